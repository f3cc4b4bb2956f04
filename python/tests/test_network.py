"""NetConfig and secrets over liberyx's network policy, against a local HTTP server."""
import http.server
import json
import threading

import pytest

import eryx

pytestmark = pytest.mark.skipif(not eryx._eryx.HAVE_NET, reason="liberyx without networking")

FETCH = ("import urllib.request, os\n"
         "req = urllib.request.Request('http://127.0.0.1:{port}/x', "
         "headers={{'Authorization': os.environ.get('API_KEY', 'none')}})\n"
         "try:\n"
         "    print(urllib.request.urlopen(req, timeout=5).read().decode())\n"
         "except Exception as e:\n"
         "    print(type(e).__name__, e)\n")


@pytest.fixture(scope="module")
def server():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b"hello from host"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd.server_address[1], seen
    httpd.shutdown()


def fetch(sb, port):
    return sb.execute(FETCH.format(port=port)).stdout


def test_no_network_by_default(server):
    port, _ = server
    assert "this sandbox has no network" in fetch(eryx.Sandbox(), port)


def test_permissive_has_the_references_connection_count():
    assert eryx.NetConfig.permissive().max_connections == 100
    assert eryx.NetConfig().max_connections == 10


def test_timeouts_default_to_the_librarys():
    # They were 30 s and 60 s here, 10 s and 30 s in the C library and its
    # documentation (docs/networking.md).
    n = eryx.NetConfig()
    assert (n.connect_timeout_ms, n.io_timeout_ms) == (10000, 30000)


def test_with_root_cert_takes_the_reference_keyword():
    # with_root_cert(cert_der=...) as the reference binding spells it; DER
    # bytes become PEM, PEM text stays.
    der = bytes(range(48))
    net = eryx.NetConfig().with_root_cert(cert_der=der)
    pem = net.root_certs_pem[0]
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
    import base64
    assert base64.b64decode("".join(pem.splitlines()[1:-1])) == der
    assert eryx.NetConfig().with_root_cert(pem).root_certs_pem == [pem]
    with pytest.raises(TypeError):
        eryx.NetConfig().with_root_cert(cert_der=3)


def test_allow_all_hosts_is_the_rule_star():
    # The reference's allow_all_hosts=True: every public host. Ours denies by
    # default, so None and False both mean the rules given.
    assert eryx.NetConfig(allow_all_hosts=True).allowed_hosts == ["*"]
    assert eryx.NetConfig(allow_all_hosts=True).allow_all_hosts
    assert eryx.NetConfig(allowed_hosts=["a.example"], allow_all_hosts=True).allowed_hosts == \
        ["a.example", "*"]
    for off in (None, False):
        assert eryx.NetConfig(allow_all_hosts=off).allowed_hosts == []
        assert not eryx.NetConfig(allow_all_hosts=off).allow_all_hosts
    assert eryx.NetConfig.permissive().allow_all_hosts
    with pytest.raises(TypeError):
        eryx.NetConfig(allow_all_hosts="yes")


def test_name_rules_and_permissive_never_reach_loopback(server):
    port, _ = server
    for net in (eryx.NetConfig(allowed_hosts=["localhost", "example.com"]),
                eryx.NetConfig.permissive(), eryx.NetConfig().allow_host("*"),
                eryx.NetConfig(allow_all_hosts=True)):
        out = fetch(eryx.Sandbox(network=net), port)
        assert "loopback" in out and "PermissionError" in out or "URLError" in out, out


def test_allow_localhost_and_block(server):
    port, _ = server
    assert fetch(eryx.Sandbox(network=eryx.NetConfig().allow_localhost()), port) == \
        "hello from host\n"
    assert fetch(eryx.Sandbox(network=eryx.NetConfig().allow_host("127.0.0.1")), port) == \
        "hello from host\n"
    blocked = eryx.NetConfig().allow_localhost().block_host("127.0.0.1")
    assert "hello" not in fetch(eryx.Sandbox(network=blocked), port)


def test_secret_substituted_on_the_wire_only(server):
    port, seen = server
    net = eryx.NetConfig().allow_localhost()
    sb = eryx.Sandbox(network=net, secrets={
        "API_KEY": {"value": "sk-the-real-secret-value", "allowed_hosts": ["127.0.0.1"]}})
    r = sb.execute("import os\nprint(os.environ['API_KEY'])")
    assert "sk-the-real-secret-value" not in r.stdout
    seen.clear()
    assert fetch(sb, port) == "hello from host\n"
    assert seen == ["sk-the-real-secret-value"]
    # To a host the secret is not allowed for, the write fails.
    other = eryx.Sandbox(network=net, secrets={
        "API_KEY": {"value": "sk-the-real-secret-value", "allowed_hosts": ["api.example.com"]}})
    seen.clear()
    out = fetch(other, port)
    assert "hello" not in out and seen == []


def test_secret_without_hosts_goes_where_the_network_allows(server):
    # As the reference: a secret given without allowed_hosts may go to the
    # hosts of the NetConfig (here loopback).
    port, seen = server
    sb = eryx.Sandbox(network=eryx.NetConfig().allow_localhost(),
                      secrets={"API_KEY": {"value": "sk-the-real-secret-value"}})
    seen.clear()
    assert fetch(sb, port) == "hello from host\n"
    assert seen == ["sk-the-real-secret-value"]
    # Unlike the reference, not when the network allows every host, or
    # hosts anyone can run (a whole top-level domain, a range wider than a
    # /8): the code could send it to a server of its own.
    with pytest.raises(ValueError, match="no allowed_hosts.*every host"):
        eryx.Sandbox(network=eryx.NetConfig.permissive(), secrets={"API_KEY": "x" * 20})
    for every in (["*:443"], ["0.0.0.0/0"], ["[::/0]:443"], ["api.example.com", "::/0"],
                  ["*.com"], ["*.com.:443"], ["0.0.0.0/1", "128.0.0.0/1"], ["2000::/3"],
                  ["::ffff:0:0/96"], ["[::ffff:0.0.0.0/100]:443"],
                  # IPv6 ranges around or spelling the IPv4 ones (passed
                  # until 2026-12-07), NAT64's and 6to4's.
                  ["0::ffff:0:0/96"], ["::/64"], ["::fffe:0:0/95"], ["64:ff9b::/96"],
                  ["2002::/16"], ["::/96"]):
        with pytest.raises(ValueError, match="no allowed_hosts.*every host"):
            eryx.Sandbox(network=eryx.NetConfig(allowed_hosts=every),
                         secrets={"API_KEY": "x" * 20})
    # Narrower rules stay the secret's hosts.
    eryx.Sandbox(network=eryx.NetConfig(allowed_hosts=["*.example.com", "10.0.0.0/8",
                                                       "::ffff:10.0.0.0/104", "2001:db8::/32"]),
                 secrets={"API_KEY": "x" * 20}).close()


def test_a_resumed_journal_does_not_fetch_again(server):
    # The request made before the suspension is replayed from the journal:
    # the server sees it once, and the resumed code reads the same body.
    port, seen = server
    seen.clear()
    asked = []
    registry = eryx.CallbackRegistry()

    def approve(body: str):
        asked.append(body)
        if len(asked) == 1:
            raise eryx.SuspendCallback("later")
        return "yes"

    registry.add(approve)
    net = eryx.NetConfig().allow_localhost()
    code = ("import urllib.request\n"
            f"url = 'http://127.0.0.1:{port}/x'\n"
            "body = urllib.request.urlopen(url, timeout=5).read().decode()\n"
            "print(body, await approve(body=body))\n")
    o = eryx.Sandbox(network=net, callbacks=registry).execute_with_journal(code)
    assert o.suspended is not None and len(seen) == 1, o.error
    journal = json.loads(json.dumps(o.journal))
    r = eryx.Sandbox(network=net, callbacks=registry).execute_with_journal(code, journal=journal)
    assert r.error is None, r.error
    assert r.result.stdout == "hello from host yes\n"
    assert asked == ["hello from host"] * 2 and r.replayed_callbacks == 0
    assert len(seen) == 1


def test_bad_network_input():
    with pytest.raises(ValueError):
        eryx.NetConfig(allowed_hosts=["bad host"])
    with pytest.raises(TypeError):
        eryx.NetConfig(allowed_hosts=[3])
    with pytest.raises(TypeError):
        eryx.Sandbox(network={"allow": ["x"]})
    with pytest.raises(ValueError, match="network"):
        eryx.Sandbox(secrets={"K": {"value": "v" * 30}})
    with pytest.raises(TypeError):
        eryx.Sandbox(network=eryx.NetConfig(), secrets={"K": 5})
    with pytest.raises((ValueError, eryx.EryxError)):
        eryx.Sandbox(network=eryx.NetConfig(allowed_hosts=["300.1.2.3/99"]))
    with pytest.raises(ValueError):
        eryx.NetConfig(max_connections=-1)
