"""A real ACME server on this box for the ACME tests: Let's Encrypt's pebble and its DNS
(pebble-challtestsrv), both Debian packages (installed by scripts/bootstrap).

pebble listens on the machine network's host side (https://192.168.56.1:14000/dir) with a TLS
certificate from a CA made here (``ca``: the file the server's certbot is told to trust). It
resolves every name through challtestsrv, which answers every A query with the machine's
address and no AAAA (so HTTP-01 validation connects to the machine's nginx on port 80), and
issues certificates of ``validity`` seconds (under 30 days: certbot.timer's plain ``certbot
renew`` renews at once). Both processes are this run's, stopped by their PID on exit.
Flags and settings: pebble(1), pebble-challtestsrv(1), /usr/share/doc/pebble/README.md.gz.
"""

import json
import os
import subprocess
import time

import requests

HOST_SIDE = "192.168.56.1"
DIRECTORY = f"https://{HOST_SIDE}:14000/dir"
MANAGEMENT = "https://127.0.0.1:15000"
DNS_MANAGEMENT = "http://127.0.0.1:8055"


class AcmeServer:
    """pebble + challtestsrv answering names with ``address`` (use as a context manager)."""

    def __init__(self, workdir, address, validity=20 * 86400):
        self.dir, self.address, self.validity = workdir, address, validity
        self.ca = workdir / "ca.crt"
        self.processes = []

    def _certificates(self):
        """A CA, and a certificate it signs for pebble (the host side's address and loopback)."""
        d = self.dir
        run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", "/CN=todo test ACME CA", "-keyout", d / "ca.key", "-out", self.ca)  # fmt: skip
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=pebble", "-keyout", d / "tls.key", "-out", d / "tls.csr")  # fmt: skip
        (d / "san.ext").write_text(f"subjectAltName=IP:{HOST_SIDE},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        run("openssl", "x509", "-req", "-in", d / "tls.csr", "-CA", self.ca, "-CAkey", d / "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", d / "san.ext", "-out", d / "tls.crt")  # fmt: skip

    def __enter__(self):
        self._certificates()
        config = {
            "pebble": {
                "listenAddress": f"{HOST_SIDE}:14000",
                "managementListenAddress": "127.0.0.1:15000",
                "certificate": str(self.dir / "tls.crt"),
                "privateKey": str(self.dir / "tls.key"),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": self.validity,
            }
        }
        (self.dir / "pebble.json").write_text(json.dumps(config))
        log = open(self.dir / "acme-server.log", "w")  # noqa: SIM115 (closed with the processes)
        self.log = log
        # Every validation for real (no reused authorization, no random wait, no rejected nonce).
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        self.processes.append(subprocess.Popen(
            ["pebble-challtestsrv", "-http01", "", "-https01", "", "-tlsalpn01", "", "-dns01", "127.0.0.1:8053",
             "-management", "127.0.0.1:8055", "-defaultIPv4", self.address, "-defaultIPv6", ""],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        self.processes.append(subprocess.Popen(
            ["pebble", "-config", str(self.dir / "pebble.json"), "-dnsserver", "127.0.0.1:8053"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        ))  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(DIRECTORY, verify=str(self.ca), timeout=2).raise_for_status()
                requests.get(f"{DNS_MANAGEMENT}/dns-request-history", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    self.__exit__()
                    log = (self.dir / "acme-server.log").read_text()
                    raise RuntimeError(f"the ACME server did not start: {log}") from None
                time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []
        self.log.close()

    def roots(self):
        """PEM of pebble's root CA (made anew at each start): what a client of the site trusts."""
        return requests.get(f"{MANAGEMENT}/roots/0", verify=str(self.ca), timeout=10).text

    def answer(self, name, address):
        """From now on, answer A queries for ``name`` with ``address`` (None: the default again)."""
        if address is None:
            requests.post(f"{DNS_MANAGEMENT}/clear-a", json={"host": name}, timeout=5).raise_for_status()
        else:
            body = {"host": name, "addresses": [address]}
            requests.post(f"{DNS_MANAGEMENT}/add-a", json=body, timeout=5).raise_for_status()
