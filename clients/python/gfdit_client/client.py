"""HTTP client for gfdit's OpenAI-compatible images API (urllib only, no dependencies)."""

import base64
import email.utils
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "GfditError", "generate", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# http.client raises these (IncompleteRead, BadStatusLine...) outside the OSError family.
_NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}


class GfditError(Exception):
    """Every failure the client reports: non-2xx replies, stream error events, network errors.

    ``status`` is the HTTP status (0 when no reply came: refused connection, timeout, DNS;
    for an error event, the stream's own status, normally 200, and ``in_stream`` is True),
    ``code``/``message``/``param``/``type`` come from OpenAI's error object, ``retry_after``
    is the Retry-After header in seconds (float) or None.
    """

    def __init__(self, status, message, code=None, param=None, retry_after=None, type=None,
                 in_stream=False):
        super().__init__(message)
        self.status = status
        self.in_stream = in_stream
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.type = type

    def __str__(self):
        if self.in_stream:
            where = "error event in the stream"
        else:
            where = "HTTP %d" % self.status if self.status else "no reply"
        code = " [%s]" % self.code if self.code else ""
        param = " (param: %s)" % self.param if self.param else ""
        retry = " (retry after %gs)" % self.retry_after if self.retry_after is not None else ""
        return "%s%s: %s%s%s" % (where, code, self.message, param, retry)

    @classmethod
    def _from_error_object(cls, status, obj, retry_after=None, in_stream=False):
        err = obj.get("error") if isinstance(obj, dict) else None
        if not isinstance(err, dict):
            return None
        return cls(status, str(err.get("message") or "(no message)"), code=err.get("code"),
                   param=err.get("param"), retry_after=retry_after, type=err.get("type"),
                   in_stream=in_stream)


def _retry_after(headers):
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # RFC 9110 also allows an HTTP date
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _http_error(e, url):
    try:
        body = e.read()
    except Exception:  # the body is a courtesy; the status alone still makes an error
        body = b""
    retry = _retry_after(e.headers)
    try:
        parsed = GfditError._from_error_object(e.code, json.loads(body.decode("utf-8")), retry)
        if parsed is not None:
            return parsed
    except (ValueError, UnicodeDecodeError):
        pass
    text = body.decode("utf-8", "replace").strip()[:500] or (e.reason or "error")
    return GfditError(e.code, "%s %s: %s" % (e.code, url, text), code="http_%d" % e.code,
                      retry_after=retry)


def _network_error(e, url):
    reason = getattr(e, "reason", e)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return GfditError(0, "timed out talking to %s" % url, code="timeout")
    if isinstance(e, http.client.HTTPException):
        return GfditError(0, "broken reply from %s: %s" % (url, e.__class__.__name__),
                          code="connection_error")
    return GfditError(0, "cannot reach gfdit at %s: %s" % (url, reason), code="connection_error")


def _size_str(size):
    if size is None or isinstance(size, str):
        return size
    w, h = size
    return "%dx%d" % (w, h)


class Client:
    """One gfdit gateway. Thread-safe: it holds no connection state between calls."""

    def __init__(self, base_url=DEFAULT_BASE_URL, timeout=600.0):
        self.base_url = base_url.rstrip("/")
        if "://" not in self.base_url:
            self.base_url = "http://" + self.base_url
        self.timeout = timeout
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        if host in _LOOPBACK or host.startswith("127."):
            # An http_proxy set for the outside world must not swallow requests to this machine.
            self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        else:
            self._opener = urllib.request.build_opener()

    # -- plumbing -----------------------------------------------------------------------------

    def _url(self, path):
        return path if "://" in path else self.base_url + path

    def _open(self, method, path, body=None, accept="application/json"):
        url = self._url(path)
        data = None
        headers = {"Accept": accept, "User-Agent": "gfdit-client-python/0.1"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return self._opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise _http_error(e, url) from None
        except _NETWORK_ERRORS as e:
            raise _network_error(e, url) from None

    def _read(self, resp, url):
        try:
            with resp:
                return resp.read()
        except _NETWORK_ERRORS as e:
            raise _network_error(e, url) from None

    def _json(self, method, path, body=None):
        url = self._url(path)
        resp = self._open(method, path, body)
        status = resp.status
        raw = self._read(resp, url)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise GfditError(status, "reply from %s is not JSON: %r" % (url, raw[:200]),
                             code="bad_reply") from None

    def _body(self, prompt, model, n, size, seed, steps, guidance, slo_ms, response_format,
              stream):
        body = {"model": model, "prompt": prompt, "n": n, "response_format": response_format}
        # Unset options are left out so the server's (model's) defaults apply.
        for key, value in (("size", _size_str(size)), ("seed", seed),
                           ("num_inference_steps", steps), ("guidance_scale", guidance),
                           ("slo_ms", slo_ms)):
            if value is not None:
                body[key] = value
        if stream:
            body["stream"] = True
        return body

    def _images_of(self, data, status=200):
        if not isinstance(data, list):
            raise GfditError(status, "reply has no 'data' list", code="bad_reply")
        out = []
        for k, item in enumerate(data):
            if not isinstance(item, dict):
                raise GfditError(status, "reply data[%d] is not an object" % k, code="bad_reply")
            entry = dict(item)
            if "b64_json" in item:
                try:
                    entry["image"] = base64.b64decode("".join(str(item["b64_json"]).split()),
                                                      validate=True)
                except (ValueError, TypeError):
                    raise GfditError(status, "reply data[%d].b64_json is not base64" % k,
                                     code="bad_reply") from None
                del entry["b64_json"]  # the decoded bytes replace it; no need to hold both
            elif "url" in item:
                entry["image"] = self.image(item["url"])
            else:
                raise GfditError(status, "reply data[%d] has neither b64_json nor url" % k,
                                 code="bad_reply")
            out.append(entry)
        return out

    # -- public API ---------------------------------------------------------------------------

    def health(self):
        """True when GET /v1/health answers {"status": "ok"}; False on any error or no reply."""
        try:
            return self._json("GET", "/v1/health").get("status") == "ok"
        except (GfditError, AttributeError):
            return False

    def models(self):
        """The model list (GET /v1/models): dicts with id, size, classes, default_steps, ..."""
        reply = self._json("GET", "/v1/models")
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list):
            raise GfditError(200, "/v1/models reply has no 'data' list", code="bad_reply")
        return data

    def image(self, url_or_id):
        """PNG bytes of a generated image: a full URL, a /v1/images/... path, or a bare id."""
        if "://" in url_or_id or url_or_id.startswith("/"):
            path = url_or_id
        else:
            path = "/v1/images/" + urllib.parse.quote(url_or_id, safe="")
        return self._read(self._open("GET", path, accept="image/png"), self._url(path))

    def generate_detailed(self, prompt, model="fashion-dit", n=1, size=None, seed=None,
                          steps=None, guidance=None, slo_ms=None, response_format="b64_json"):
        """Like generate(), but returns the reply's items: each dict as the server sent it
        (e.g. seed, class, latency_ms, url) with "image": PNG bytes in place of b64_json."""
        body = self._body(prompt, model, n, size, seed, steps, guidance, slo_ms,
                          response_format, False)
        reply = self._json("POST", "/v1/images/generations", body)
        return self._images_of(reply.get("data") if isinstance(reply, dict) else None)

    def generate(self, prompt, model="fashion-dit", n=1, size=None, seed=None, steps=None,
                 guidance=None, slo_ms=None, response_format="b64_json"):
        """Generates n images of prompt; returns a list of PNG bytes (urls are fetched)."""
        return [item["image"] for item in self.generate_detailed(
            prompt, model, n, size, seed, steps, guidance, slo_ms, response_format)]

    def generate_stream(self, prompt, model="fashion-dit", n=1, size=None, seed=None,
                        steps=None, guidance=None, slo_ms=None, response_format="b64_json"):
        """Generates with "stream": true; yields each event dict as it arrives.

        Progress events are passed through as sent. The last event is the completed one, with
        an extra "images" key (list of PNG bytes). An error event raises GfditError; so does a
        stream that ends before the completed event.
        """
        body = self._body(prompt, model, n, size, seed, steps, guidance, slo_ms,
                          response_format, True)
        path = "/v1/images/generations"
        url = self._url(path)
        resp = self._open("POST", path, body, accept="text/event-stream")
        status = resp.status
        with resp:
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "text/event-stream":
                # A server that ignores "stream" still gives a usable answer: one final event.
                raw = self._read(resp, url)
                try:
                    reply = json.loads(raw.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    raise GfditError(status, "reply from %s is neither an event stream nor "
                                     "JSON: %r" % (url, raw[:200]), code="bad_reply") from None
                event = {"type": "image_generation.completed"}
                event.update(reply if isinstance(reply, dict) else {})
                event["images"] = [i["image"] for i in self._images_of(event.get("data"), status)]
                yield event
                return
            for event in self._events(resp, url, status):
                kind = event.get("type")
                if kind == "error":
                    err = GfditError._from_error_object(status, event, in_stream=True)
                    raise err or GfditError(status, "error event without an error object: %r"
                                            % (event,), code="bad_reply", in_stream=True)
                if kind == "image_generation.completed":
                    event["images"] = [i["image"] for i in
                                       self._images_of(event.get("data"), status)]
                    yield event
                    return
                yield event
        raise GfditError(status, "event stream from %s ended before the completed event" % url,
                         code="stream_truncated")

    def _events(self, resp, url, status):
        data_lines = []
        while True:
            try:
                line = resp.readline()
            except _NETWORK_ERRORS as e:
                raise _network_error(e, url) from None
            if not line:
                return
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data_lines:  # a blank line ends an event (the SSE rule)
                    payload = "\n".join(data_lines)
                    data_lines = []
                    try:
                        event = json.loads(payload)
                    except ValueError:
                        raise GfditError(status, "event is not JSON: %r" % payload[:200],
                                         code="bad_reply") from None
                    if isinstance(event, dict):
                        yield event
                continue
            if line.startswith(":"):
                continue  # keep-alive comment
            field, _, value = line.partition(":")
            if field == "data":
                data_lines.append(value[1:] if value.startswith(" ") else value)
            # event:, id:, retry: carry nothing this API uses


def generate(prompt, base_url=DEFAULT_BASE_URL, timeout=600.0, **kw):
    """One-shot Client(base_url, timeout).generate(prompt, **kw)."""
    return Client(base_url, timeout=timeout).generate(prompt, **kw)
