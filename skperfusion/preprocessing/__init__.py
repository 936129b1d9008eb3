"""Pre-processing of DSC signals."""
