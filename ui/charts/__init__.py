"""Plotly figures for the dashboard, one module per page, each figure built from one table of the library
(`plasticity.views`, a study's `table()`), with the shared style in `style`."""
