"""Self-contained HTML QC reports of mapped exams (one page per exam, an index per cohort).

A report is one HTML file with its images embedded (PNG, base64), so it can
be mailed or archived alone: the AIF (its voxels on the baseline image, its
curve, saturated samples marked where the QC record gives them), the maps
on shared robust colour scales, K2 where leakage was corrected, the QC
record, a few voxels' curves with the method's fit, and the settings that
made the maps (those of the maps' JSON sidecars).
"""

import base64
import html
import io
import json
import re
from pathlib import Path

from .._docs import fill_doc
from .figures import aif_figure, fit_figure, maps_figure

__all__ = ["count_flags", "exam_report", "index_report", "report_entries", "report_file_name"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left;
border-bottom: 1px solid #eee; vertical-align: top; }
.flag { color: #a30; font-weight: bold; } .ok { color: #260; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
"""


def report_file_name(subject, desc, *, session=None):
    """File name of an exam's report at the root of the derivatives dataset.

    Parameters
    ----------
    subject : str
        Subject id, with or without its ``sub-`` prefix.
    desc : str
        The ``desc`` label (method's registry name).
    session : str or None, default=None
        Session label.

    Returns
    -------
    name : str
        ``sub-<id>[_ses-<s>]_desc-<desc>_report.html``.
    """
    from ..derivatives import map_file_name

    return map_file_name(subject, "report", desc, session=session, extension=".html")


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _page(title, body):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _rows(items):
    return "<table>" + "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in items) + "</table>"


def _number(value):
    return "" if value is None else f"{value:.3g}"


def _flags(qc):
    """The QC record: its flags first (raised ones highlighted), then its other fields."""
    if not qc:
        return "<p>No QC record for this exam.</p>"
    flags = qc.get("flags") if isinstance(qc, dict) else None
    checks = qc.get("checks") if isinstance(qc, dict) else None
    parts = []
    if isinstance(checks, dict):  # skperfusion.qc.QCRecord.to_dict: one row per check
        parts.append("<table><tr><th>flag</th><th></th><th>value</th><th>threshold</th>"
                     "<th>message</th></tr>" + "".join(
                         f'<tr><td>{html.escape(str(name))}</td>'
                         f'<td class="{"flag" if check.get("raised") else "ok"}">'
                         f'{"raised" if check.get("raised") else "ok"}</td>'
                         f'<td>{_number(check.get("value"))}</td>'
                         f'<td>{_number(check.get("threshold"))}</td>'
                         f'<td>{html.escape(str(check.get("message") or ""))}</td></tr>'
                         for name, check in checks.items()) + "</table>")
    elif isinstance(flags, dict):
        parts.append("<ul>" + "".join(
            f'<li class="{"flag" if raised else "ok"}">{html.escape(str(name))}: '
            f'{"raised" if raised else "not raised"}</li>'
            for name, raised in flags.items()) + "</ul>")
    elif isinstance(flags, list):
        parts.append("<ul>" + "".join(f'<li class="flag">{html.escape(str(flag))}</li>'
                                      for flag in flags) + "</ul>" if flags else
                     '<p class="ok">No QC flag raised.</p>')
    others = {k: v for k, v in qc.items()
              if k not in ("flags", "checks", "aif_saturated_samples")}
    if others:
        parts.append(f"<pre>{html.escape(json.dumps(others, indent=2))}</pre>")
    return "".join(parts)


def _summary(exam_maps, sidecar):
    method = sidecar["Method"]
    curves = sidecar["ExamToCurves"]
    aif = sidecar.get("AIF") or {}
    items = [("Subject", exam_maps.exam.subject_id), ("Method", method["Label"]),
             ("AIF", f"{aif.get('Source', 'n/a')}, {aif.get('Voxels', 'n/a')} voxel(s), "
                     f"scale {aif.get('Scale', 1):.3g}, unit {aif.get('Unit', 'n/a')}"),
             ("AIF scaling", curves.get("aif_scaling")), ("Relaxivity", curves.get("relaxivity")),
             ("Leakage correction", curves.get("leakage")),
             ("Mapped voxels", f"{int(exam_maps.exam.mask(exam_maps.mask).sum())} "
                               f"({exam_maps.mask} mask)")]
    if sidecar.get("MapsNotWritten"):
        items.append(("Maps not written", ", ".join(
            f"{name}: {why}" for name, why in sidecar["MapsNotWritten"].items())))
    if curves.get("relaxivity") == "none" or curves.get("aif_scaling") == "none":
        items.append(("Absolute values", "relative only: CBF and CBV need --aif-scaling vof "
                                         "--relaxivity van_osch to be absolute; read rCBF, "
                                         "rCBV and ratios"))
    return _rows(items)


def exam_report(exam_maps, sidecar, *, desc, session=None, fits=None):
    """The HTML QC report of one mapped exam.

    Parameters
    ----------
    exam_maps : ExamMaps
        The maps with their exam and AIF.
    sidecar : dict
        The fields shared by the maps' sidecars
        (:func:`~skperfusion.derivatives.derivative_writers`): method,
        exam-to-curves settings, AIF, QC record, versions.
    desc : str
        The ``desc`` label of the maps (method's registry name).
    session : str or None, default=None
        Session label.
    fits : dict or None, default=None
        A few voxels' curves (``"times"`` in s, ``"tissue"`` and ``"fit"``
        arrays of shape (n, n_times), ``"labels"``), e.g. from
        :func:`skperfusion.report.figures.voxel_fits`; None leaves the
        section out.

    Returns
    -------
    html : str
        One self-contained page.
    """
    exam = exam_maps.exam
    session = f" ses-{str(session).removeprefix('ses-')}" if session else ""
    title = (f"{exam.subject_id}{session}: {sidecar['Method']['Label']} perfusion maps "
             f"(desc-{desc})")
    qc = sidecar.get("QC") or {}
    sections = ["<h2>Summary</h2>", _summary(exam_maps, sidecar),
                "<h2>QC flags</h2>", _flags(qc)]
    if exam_maps.aif is not None:
        saturated = qc.get("aif_saturated_samples") if isinstance(qc, dict) else None
        caption = (f"{int(exam_maps.aif.voxels.sum())} arterial voxel(s) (red squares on the "
                   "baseline image); ")
        caption += ("saturated samples not recorded." if saturated is None else
                    f"saturated samples: {int(sum(map(bool, saturated)))} (crosses).")
        sections += ["<h2>Arterial input function</h2>", f"<p>{caption}</p>",
                     _png(aif_figure(exam_maps.aif, exam, saturated=saturated))]
    sections += ["<h2>Maps</h2>",
                 "<p>One colour scale per map, shared by its slices: the 2nd-98th "
                 "percentiles of the perfused voxels (CBF at least a tenth of its 98th "
                 "percentile, so that CSF and noise do not set the scale), the AIF and VOF "
                 "vessels left out; K2 symmetric about 0. Tumour (red) and NAWM (cyan) "
                 "masks outlined where the exam has them.</p>",
                 _png(maps_figure(exam_maps))]
    if "K2" in exam_maps.maps:
        leakage = html.escape(str(sidecar["ExamToCurves"].get("leakage")))
        sections += [f"<p>K2: leakage rate constant of the {leakage} "
                     "correction (1/s); positive where T2* effects of extravasated agent "
                     "dominate, negative where T1 shortening does.</p>"]
    if fits is not None:
        sections += ["<h2>Voxel fits</h2>", _png(fit_figure(fits))]
    sections += ["<h2>Settings and provenance</h2>",
                 f"<pre>{html.escape(json.dumps(sidecar, indent=2))}</pre>"]
    return _page(title, "\n".join(sections))


def index_report(entries, *, title="skperfusion QC reports"):
    """An index page linking the reports of a cohort.

    Parameters
    ----------
    entries : list of dict
        One per report: ``"file"`` (its file name, relative to the index),
        ``"subject"``, ``"session"`` (or None), ``"method"`` and ``"flags"``
        (number of QC flags raised, or None when unknown).
    title : str, default="skperfusion QC reports"

    Returns
    -------
    html : str
    """
    rows = "".join(
        f'<tr><td><a href="{html.escape(e["file"])}">{html.escape(e["subject"])}</a></td>'
        f'<td>{html.escape(e.get("session") or "")}</td><td>{html.escape(e["method"])}</td>'
        f'<td class="{"flag" if e.get("flags") else "ok"}">'
        f'{"n/a" if e.get("flags") is None else e["flags"]}</td></tr>'
        for e in entries)
    body = ("<table><tr><th>subject</th><th>session</th><th>method</th>"
            f"<th>QC flags raised</th></tr>{rows}</table>")
    return _page(title, body)


_REPORT_NAME = re.compile(r"(sub-[0-9A-Za-z]+)(?:_(ses-[0-9A-Za-z]+))?_desc-([0-9A-Za-z]+)"
                          r"_report\.html")


@fill_doc
def report_entries(out_dir):
    """Every QC report at the root of a derivatives dataset, as entries of :func:`index_report`.

    %(dataset_root_returns)s
    entries : list of dict
        One per ``sub-<id>[_ses-<s>]_desc-<desc>_report.html``, sorted by
        name; ``"flags"`` counted from the exam's ``_qc.json`` beside its
        maps (None without one).
    """
    entries = []
    for path in sorted(Path(out_dir).glob("sub-*_report.html")):
        match = _REPORT_NAME.fullmatch(path.name)
        if match is None:
            continue
        subject, session, desc = match.groups()
        record = Path(out_dir, subject, *([session] if session else []), "perf",
                      path.name.replace("_report.html", "_qc.json"))
        try:
            flags = count_flags(json.loads(record.read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            flags = None
        entries.append({"file": path.name, "subject": subject, "session": session,
                        "method": desc, "flags": flags})
    return entries


def count_flags(qc):
    """Number of raised QC flags in a QC record, or None when it has no flags.

    Parameters
    ----------
    qc : dict
        A QC record (``"flags"``: a dict of flag name to bool, or a list of
        raised flags).

    Returns
    -------
    count : int or None
    """
    flags = (qc or {}).get("flags")
    if isinstance(flags, dict):
        return int(sum(bool(v) for v in flags.values()))
    if isinstance(flags, list):
        return len(flags)
    return None
