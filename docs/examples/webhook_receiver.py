"""A webhook receiver that checks the platform's signatures (Standard Webhooks), with Python's
standard library alone. Run: WEBHOOK_SECRET=whsec_... PORT=9000 python3 webhook_receiver.py"""
import base64, hashlib, hmac, json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = base64.b64decode(os.environ["WEBHOOK_SECRET"].split("_", 1)[1])


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        wid, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        mac = hmac.new(KEY, b"%s.%s.%s" % (wid.encode(), ts.encode(), body), hashlib.sha256).digest()
        good = "v1," + base64.b64encode(mac).decode()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300  # refuse replays of old messages
        if not fresh or not any(hmac.compare_digest(good, s) for s in self.headers["webhook-signature"].split()):
            self.send_response(400); self.end_headers(); return
        # webhook-id is the same on every retry: remember it and skip what was handled already
        print(json.loads(body)["type"], wid, flush=True)
        self.send_response(204); self.end_headers()


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "9000"))), Hook).serve_forever()
