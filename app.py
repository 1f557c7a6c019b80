"""The dashboard's entry point: `streamlit run app.py`. Only the router; each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="plasticity", page_icon=":material/content_cut:", layout="wide")

st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/prune.py", title="Prune & recover", icon=":material/content_cut:"),
        st.Page("pages/norms.py", title="Filter-norm histories", icon=":material/show_chart:"),
        st.Page("pages/compare.py", title="Random vs criterion", icon=":material/compare_arrows:"),
        st.Page("pages/hbfp.py", title="History-based pruning", icon=":material/join_inner:"),
        st.Page("pages/masks.py", title="Random masks", icon=":material/grid_view:"),
    ]
).run()
