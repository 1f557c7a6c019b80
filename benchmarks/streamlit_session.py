"""One browser tab as a Streamlit server sees it, without a browser: a websocket speaking Streamlit's own
protocol (protobuf BackMsg out, ForwardMsg in), for benchmarks that put many sessions on one server.

A tab asks for a page (`rerun_script` with its name and query string), keeps the fragments that ask to
be rerun every so often (`auto_rerun`: the live views of running jobs) going at their interval, and sends
a widget's new value as the frontend does when a slider is released. What it keeps of the page is what
a benchmark reads: each widget's id by its key, each metric's text by its label, and the errors shown.
Nothing is drawn, so a class of sessions costs the machine what the server spends on them, as it would
with the students' browsers on their own laptops.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ERROR_WORDS = re.compile(r"failed|error", re.IGNORECASE)


class Session:
    def __init__(self, url: str, page: str, query: str = ""):
        """Open `page` (its URL path, "prune") of the server at `url` ("http://127.0.0.1:8501")."""
        self.page, self.query = page, query
        self._socket = connect(
            url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"], max_size=None
        )
        self._send_lock = threading.Lock()
        self._changed = threading.Condition()
        self.widgets: dict[str, str] = {}  # the key a page gave a widget -> its id in the protocol
        self.metrics: dict[str, str] = {}  # label -> the value shown
        self.errors: list[str] = []  # exceptions, and alerts that say something failed
        self.on_metric: Callable[[str, str], None] | None = None  # told of every metric drawn, as it arrives
        self._fragments: dict[str, float] = {}  # fragment id -> seconds between its reruns
        self._progress_drawn = float("-inf")
        self._closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._tick, daemon=True).start()
        self._rerun()

    def set_slider(self, key: str, value: float) -> None:
        """Release the slider whose key is `key` at `value`: the page reruns with it."""
        self._rerun(sliders={key: value})

    def click(self, key: str) -> None:
        """Press the button whose key is `key`."""
        self._rerun(buttons=[key])

    def progressing(self, within: float = 3.0) -> bool:
        """Whether a progress bar was drawn in the last `within` seconds (a job of this page runs)."""
        return time.monotonic() - self._progress_drawn < within

    def wait(self, condition: Callable[[Session], bool], timeout: float) -> bool:
        """Block until `condition(self)` holds (True) or `timeout` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout)

    def close(self) -> None:
        self._closed.set()
        self._socket.close()

    def _rerun(self, fragment: str = "", sliders: dict[str, float] | None = None, buttons: tuple = ()) -> None:
        message = BackMsg()
        rerun = message.rerun_script
        rerun.query_string, rerun.page_name = self.query, self.page
        if fragment:
            rerun.fragment_id, rerun.is_auto_rerun = fragment, True
        for key, value in (sliders or {}).items():
            state = rerun.widget_states.widgets.add()
            state.id = self.widgets[key]
            state.double_array_value.data.append(value)
        for key in buttons:
            state = rerun.widget_states.widgets.add()
            state.id, state.trigger_value = self.widgets[key], True
        with self._send_lock:
            self._socket.send(message.SerializeToString())

    def _tick(self) -> None:
        """Rerun each live fragment at its interval, as the frontend does."""
        due: dict[str, float] = {}
        while not self._closed.wait(0.05):
            now = time.monotonic()
            for fragment, interval in list(self._fragments.items()):
                if now >= due.setdefault(fragment, now + interval):
                    due[fragment] = now + interval
                    try:
                        self._rerun(fragment=fragment)
                    except ConnectionClosed:
                        return

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._socket.recv()
            except ConnectionClosed:
                return
            message = ForwardMsg()
            message.ParseFromString(data)
            with self._changed:
                self._take(message)
                self._changed.notify_all()

    def _take(self, message: ForwardMsg) -> None:
        kind = message.WhichOneof("type")
        if kind == "new_session" and not message.metadata.run.fragment_ids:
            self._fragments.clear()  # a whole run of the page: the fragments it draws ask again
        elif kind == "auto_rerun":
            self._fragments[message.auto_rerun.fragment_id] = message.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            self._fragments.clear()
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            element = message.delta.new_element
            shown = element.WhichOneof("type")
            if shown == "metric":
                self.metrics[element.metric.label] = element.metric.body
                if self.on_metric is not None:
                    self.on_metric(element.metric.label, element.metric.body)
            elif shown == "progress":
                self._progress_drawn = time.monotonic()
            elif shown == "exception":
                self.errors.append(element.exception.message)
            elif shown == "alert" and ERROR_WORDS.search(element.alert.body):
                self.errors.append(element.alert.body)
            elif shown and hasattr(getattr(element, shown), "id"):
                widget_id = getattr(element, shown).id
                if widget_id.count("-") >= 2:  # "$$ID-<hash>-<key>" for a widget with a key
                    self.widgets[widget_id.split("-", 2)[2]] = widget_id
