"""The glioma-grading study of Fayolle et al. 2025 (§2.3, §3): statistics, figures, report."""
