"""What the dashboard's pages share: widgets (ui.widgets) and plotly chart builders (ui.charts)."""
