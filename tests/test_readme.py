import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title):
    text = README.read_text()
    return re.search(rf"## {title}\n\n```python\n(.*?)```", text, re.S).group(1)


def test_first_look_snippet_runs_and_recovers_cbv():
    namespace = {}
    exec(_section_code("A first look"), namespace)
    # Ground truth of the snippet: CBV = CBF · MTT / 60 for (20, 4) and (60, 6).
    np.testing.assert_allclose(namespace["maps"][:, 1], [20 * 4 / 60, 60 * 6 / 60], rtol=0.01)


def test_ci_runs_exactly_the_readme_test_command():
    text = README.read_text()
    test_command = re.search(r"Run the tests:\n\n```bash\n(.*?)\n```", text, re.S).group(1)
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
