#!/usr/bin/env python3
"""The Python client against a live serving graph (launch/graphs/serving-http.yaml).

  python3 clients/python/tests/live_graph_test.py --gfdit build/launch/cli/gfdit

Starts the graph on a free port, runs the client and examples/python/generate.py against it,
stops the graph. Exit status 0 when every check passed. Needs no pip install.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "clients", "python"))

import gfdit_client  # noqa: E402
from gfdit_client import GfditError  # noqa: E402
from gfdit_client.png import read_png  # noqa: E402

MODEL = "fashion-dit"
STEPS = 8


def launch_command(gfdit, port_file):
    """The one place that knows how to start the HTTP graph: adjust here when the launch file's
    arguments change. It must listen on a free port and write that port to port_file."""
    world = os.path.join(os.path.dirname(port_file), "world")
    os.makedirs(world, exist_ok=True)
    return [gfdit, "launch", os.path.join(REPO, "launch", "graphs", "serving-http.yaml"),
            "listen:=127.0.0.1:0", "port_file:=" + port_file, "world_dir:=" + world]


class Graph:
    def __init__(self, gfdit, tmp):
        self.port_file = os.path.join(tmp, "port")
        self.log_path = os.path.join(tmp, "graph.log")
        self.command = launch_command(gfdit, self.port_file)
        self.proc = None

    def start(self):
        print("starting:", " ".join(self.command), flush=True)
        self.log = open(self.log_path, "wb")
        # Own session: a SIGKILL fallback can then take the whole process group, not only the
        # launcher, and a Ctrl-C meant for this script is not delivered twice.
        self.proc = subprocess.Popen(self.command, cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_for_url(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("the graph exited with status %d before writing %s"
                                     % (self.proc.returncode, self.port_file))
            port = self._read_port()
            if port:
                return "http://127.0.0.1:%d" % port
            time.sleep(0.1)
        raise AssertionError("no port in %s after %.0f s" % (self.port_file, timeout))

    def _read_port(self):
        try:
            with open(self.port_file) as f:
                text = f.read().strip()
        except OSError:
            return None
        try:  # "PORT" or "HOST:PORT"; a half-written file fails to parse and is read again
            port = int(text.rsplit(":", 1)[-1])
        except ValueError:
            return None
        return port if 0 < port < 65536 else None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
            print("graph stopped (status %d)" % self.proc.returncode, flush=True)
        except subprocess.TimeoutExpired:
            print("graph still running 20 s after SIGINT: SIGKILL", flush=True)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return "(no log)"


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def check_png_28(data, what):
    try:
        w, h, c, px = read_png(data)
    except ValueError as e:
        raise AssertionError("%s: not a PNG read_png accepts: %s" % (what, e))
    check((w, h, c) == (28, 28, 1), "%s: %dx%d with %d channels, expected 28x28 grey" % (what, w, h, c))
    return px


def wait_healthy(client, graph, timeout):
    deadline = time.monotonic() + timeout
    while not client.health():
        check(graph.proc.poll() is None, "the graph exited before /v1/health answered ok")
        check(time.monotonic() < deadline, "/v1/health not ok after %.0f s" % timeout)
        time.sleep(0.2)
    # Then until a worker has said it serves the model (workers load it, then join).
    while MODEL not in [m.get("id") for m in client.models()]:
        check(graph.proc.poll() is None, "the graph exited before %s was served" % MODEL)
        check(time.monotonic() < deadline, "%s not in /v1/models after %.0f s" % (MODEL, timeout))
        time.sleep(0.2)


def test_models(client):
    models = client.models()
    ids = [m.get("id") for m in models]
    check(MODEL in ids, "/v1/models lists %s, not %s" % (ids, MODEL))
    m = models[ids.index(MODEL)]
    check(m.get("size") == "28x28", "%s size is %r" % (MODEL, m.get("size")))
    classes = m.get("classes") or []
    check(len(classes) == 10 and "sneaker" in classes, "%s classes: %r" % (MODEL, classes))
    return classes


def test_b64(client):
    items = client.generate_detailed("sneaker", model=MODEL, seed=7, steps=STEPS,
                                     response_format="b64_json")
    check(len(items) == 1, "n=1 gave %d images" % len(items))
    if "seed" in items[0]:
        check(items[0]["seed"] == 7, "image 0 reports seed %r, asked 7" % items[0]["seed"])
    return check_png_28(items[0]["image"], "b64_json sneaker")


def test_url(client, base, b64_pixels):
    items = client.generate_detailed("sneaker", model=MODEL, seed=7, steps=STEPS,
                                     response_format="url")
    check(len(items) == 1, "n=1 gave %d images" % len(items))
    url = items[0].get("url", "")
    check(url.startswith("http://") and "/v1/images/" in url, "item url is %r" % url)
    px = check_png_28(items[0]["image"], "url sneaker")
    again = client.image(url.rsplit("/", 1)[-1])  # by bare id this time
    check(again == items[0]["image"], "GET %s by id gave other bytes" % url)
    if px != b64_pixels:
        # Not a failure of the client: the same seed is meant to give the same bits, so say it.
        print("WARNING: sneaker seed 7 gave different pixels as url and as b64_json", flush=True)


def test_unknown_image(client):
    try:
        client.image("no-such-image-id")
    except GfditError as e:
        check(e.status == 404, "unknown image id: HTTP %d, expected 404" % e.status)
        return
    raise AssertionError("GET /v1/images/no-such-image-id succeeded")


def test_stream(client):
    events = list(client.generate_stream("sneaker", model=MODEL, seed=7, steps=STEPS))
    check(events, "the stream gave no events")
    final = events[-1]
    check(final.get("type") == "image_generation.completed", "last event: %r" % final.get("type"))
    progress = events[:-1]
    check(progress, "no progress event before the completed one")
    last = {}
    for ev in progress:
        check(ev.get("type") == "image_generation.progress", "unexpected event before the end: %r" % ev)
        i, step, total = ev.get("index"), ev.get("step"), ev.get("total")
        check(i == 0, "progress for image %r with n=1" % i)
        check(total == STEPS, "progress total %r, asked %d steps" % (total, STEPS))
        check(isinstance(step, int) and step > last.get(i, 0), "steps not increasing: %r after %r" % (step, last.get(i)))
        last[i] = step
    check(last[0] == STEPS, "the last progress event is at step %d of %d" % (last[0], STEPS))
    check(len(final.get("images", [])) == 1, "completed event has %d images" % len(final.get("images", [])))
    check_png_28(final["images"][0], "streamed sneaker")
    return len(progress)


def test_bad_prompt(client):
    try:
        client.generate("sneakr", model=MODEL, steps=STEPS)
    except GfditError as e:
        check(e.status == 400, "bad prompt: HTTP %d, expected 400 (%s)" % (e.status, e))
        check("sneaker" in e.message, "bad prompt's message names no nearby class: %r" % e.message)
        return e.message
    raise AssertionError("prompt 'sneakr' was accepted")


def test_cli(base, tmp, classes):
    out = os.path.join(tmp, "cli")
    grid_path = os.path.join(tmp, "grid.png")
    cmd = [sys.executable, os.path.join(REPO, "examples", "python", "generate.py"), "--url", base,
           "--model", MODEL, "--every-class", "--n", "1", "--steps", str(STEPS), "--out", out,
           "--grid", grid_path]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    check(run.returncode == 0, "generate.py exited %d:\n%s%s" % (run.returncode, run.stdout, run.stderr))
    pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    check(len(pngs) == len(classes) == 10, "generate.py wrote %d PNGs: %s" % (len(pngs), pngs))
    for f in pngs:
        check_png_28(open(os.path.join(out, f), "rb").read(), f)
    w, h, c, _ = read_png(open(grid_path, "rb").read())
    check((w, h) == (28 * 4, 28 * 4 * 10), "grid is %dx%d, expected 112x1120 (10 rows of one)" % (w, h))
    return pngs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gfdit", required=True, help="path to the gfdit binary")
    ap.add_argument("--startup-timeout", type=float, default=180.0,
                    help="seconds for the graph to write its port and answer /v1/health")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    gfdit = os.path.abspath(args.gfdit)
    if not os.access(gfdit, os.X_OK):
        print("error: %s is not an executable" % gfdit, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="gfdit-pyclient-")
    graph = Graph(gfdit, tmp)
    failed = False
    try:
        graph.start()
        base = graph.wait_for_url(args.startup_timeout)
        client = gfdit_client.Client(base, timeout=300.0)
        wait_healthy(client, graph, args.startup_timeout)
        print("ok   graph answers at", base, flush=True)
        classes = test_models(client)
        print("ok   /v1/models: %s with %d classes" % (MODEL, len(classes)), flush=True)
        px = test_b64(client)
        print("ok   b64_json: sneaker seed 7, %d steps, a 28x28 grey PNG" % STEPS, flush=True)
        test_url(client, base, px)
        print("ok   url: fetched by URL and by id", flush=True)
        test_unknown_image(client)
        print("ok   unknown image id: 404", flush=True)
        count = test_stream(client)
        print("ok   stream: %d progress events, steps increasing, then completed" % count, flush=True)
        message = test_bad_prompt(client)
        print("ok   bad prompt: 400 %r" % message, flush=True)
        test_cli(base, tmp, classes)
        print("ok   examples/python/generate.py --every-class: 10 PNGs and a 10-row grid", flush=True)
    except Exception:
        failed = True
        traceback.print_exc()
    finally:
        graph.stop()
    if failed:
        print("---- graph log (last lines) ----\n" + graph.log_tail(), file=sys.stderr)
    if args.keep or failed:
        print("files kept in", tmp)
    else:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print("FAILED" if failed else "PASSED", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
