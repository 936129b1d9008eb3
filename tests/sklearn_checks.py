"""Expected failures of scikit-learn's estimator checks shared by the curve estimators.

These checks feed a flat X with an odd number of columns (3 or 5 features),
which cannot be split into ``[tissue | aif]`` (SPEC §4): a clear error is the
right answer. Each test module checks the same behaviours on even-column data.
"""

ODD_COLUMNS = "feeds a flat X with an odd number of columns, invalid by SPEC §4"

ODD_COLUMN_CHECKS = dict.fromkeys([
    "check_fit_score_takes_y",
    "check_dont_overwrite_parameters",
    "check_estimators_dtypes",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_dict_unchanged",
    "check_fit2d_predict1d",
], ODD_COLUMNS)
