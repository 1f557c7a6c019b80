"""The dashboard's entry point: `streamlit run app.py`.

`streamlit run` imports this file once as the server, an `st.App`; every session then runs it as the
router over pages/, and the first one has the library warmed up in the background (ui/startup.py).
"""

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

if get_script_run_ctx(suppress_warning=True) is None:  # the server, at start-up
    from ui.startup import lifespan

    app = st.App(__file__, lifespan=lifespan)
else:
    from ui.startup import warm_up_soon

    warm_up_soon()  # once per process, once the first page has had time to reach the browser
    st.set_page_config(page_title="plasticity", page_icon=":material/content_cut:", layout="wide")
    # Less empty space above the title: on a 1280x800 projector it kept the charts below the fold.
    st.html('<style>[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }</style>')
    st.navigation(
        [
            st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
            st.Page("pages/lesson.py", title="Lesson", icon=":material/cast_for_education:"),
            st.Page("pages/prune.py", title="Prune & recover", icon=":material/content_cut:"),
            st.Page("pages/norms.py", title="Filter-norm histories", icon=":material/show_chart:"),
            st.Page("pages/compare.py", title="Random vs criterion", icon=":material/compare_arrows:"),
            st.Page("pages/sensitivity.py", title="Layer sensitivity", icon=":material/layers:"),
            st.Page("pages/studies.py", title="Class subsets & pre-training", icon=":material/school:"),
            st.Page("pages/hbfp.py", title="History-based pruning", icon=":material/join_inner:"),
            st.Page("pages/masks.py", title="Random masks", icon=":material/grid_view:"),
            st.Page("pages/attribution.py", title="What filters look at", icon=":material/visibility:"),
            st.Page("pages/scenes.py", title="Detection & segmentation", icon=":material/center_focus_strong:"),
        ]
    ).run()
