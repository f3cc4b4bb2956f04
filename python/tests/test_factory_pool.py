import asyncio
import os
import threading
import textwrap
import time
import zipfile

import pytest

import eryx


def test_factory_imports_and_setup_code(tmp_path):
    f = eryx.SandboxFactory(imports=["decimal", "fractions"],
                            setup_code="import decimal\nD = decimal.Decimal\nseed = [1, 2, 3]")
    sb = f.create_sandbox()
    # Imported modules are loaded (in sys.modules) but not bound in __main__.
    r = sb.execute("import sys\nprint('fractions' in sys.modules, 'fractions' in globals())\n"
                   "import fractions\nprint(D('1.1') + D('2.2'), fractions.Fraction(1, 3))")
    assert r.stdout == "True False\n3.3 1/3\n"
    sb.execute("seed.append(4)")
    # Every execute of a factory sandbox starts from the factory's state,
    # also after a run that failed.
    assert sb.execute("print(seed)").stdout == "[1, 2, 3]\n"
    with pytest.raises(eryx.ExecutionError):
        sb.execute("seed.append(5)\n1/0")
    assert sb.execute("print(seed)").stdout == "[1, 2, 3]\n"
    s = f.create_session()
    s.execute("seed.append(9)")
    assert s.execute("print(seed)").stdout == "[1, 2, 3, 9]\n"
    s.reset()
    assert s.execute("print(seed)").stdout == "[1, 2, 3]\n"
    assert f.size_bytes > 0


def test_factory_packages_save_load(tmp_path):
    whl = tmp_path / "greet-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("greet/__init__.py", "def hello(n):\n    return f'hello {n}'\n")
        z.writestr("greet-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("greet-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: greet\n"
                   "Version: 1.0\n")
    site = tmp_path / "site"
    (site / "sitepkg").mkdir(parents=True)
    (site / "sitepkg" / "__init__.py").write_text("VALUE = 5\n")
    os.environ["ERYX_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        f = eryx.SandboxFactory(site_packages=site, packages=[whl], imports=["greet"])
    finally:
        del os.environ["ERYX_CACHE_DIR"]
    sb = f.create_sandbox()
    assert sb.execute("import sitepkg, greet; print(greet.hello(sitepkg.VALUE))").stdout == \
        "hello 5\n"
    path = tmp_path / "f.bin"
    f.save(path)
    g = eryx.SandboxFactory.load(path)
    assert g.create_sandbox().execute("import greet; print(greet.hello(1))").stdout == \
        "hello 1\n"
    assert g.to_bytes() == path.read_bytes()
    with pytest.raises(eryx.InitializationError):
        eryx.SandboxFactory.from_bytes(b"ERYXFAC1" + b"\xff" * 20)
    with pytest.raises(eryx.InitializationError):
        eryx.SandboxFactory.from_bytes(b"junk")


def test_factory_packages_are_imported_from_their_bytecode(tmp_path):
    # By default the factory's image holds the packages' bytecode: a
    # sandbox's import compiles nothing. compile_packages=False leaves the
    # sources alone, and each import compiles its module.
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("from .mod import VALUE\n")
    (site / "pkg" / "mod.py").write_text("VALUE = 6 * 7\n")
    probe = ("import builtins, sys\n"
             "seen = []\n"
             "real = builtins.compile\n"
             "def spy(source, filename, *a, **k):\n"
             "    if str(filename).endswith('.py'):\n"
             "        seen.append(filename.rsplit('/', 2)[-2:])\n"
             "    return real(source, filename, *a, **k)\n"
             "builtins.compile = spy\n"
             "import pkg\n"
             "builtins.compile = real\n"
             "print(pkg.VALUE, seen)\n")
    compiled = eryx.SandboxFactory(site_packages=site)
    assert compiled.create_sandbox().execute(probe).stdout == "42 []\n"
    plain = eryx.SandboxFactory(site_packages=site, compile_packages=False)
    assert plain.create_sandbox().execute(probe).stdout == \
        "42 [['pkg', '__init__.py'], ['pkg', 'mod.py']]\n"
    assert plain.size_bytes < compiled.size_bytes
    compiled.create_sandbox(site_packages=None, scrub_stdout=True)


def test_packages_of_one_sandbox(tmp_path):
    # create_sandbox(site_packages=DIR), the reference's "additional
    # site-packages": DIR's packages for that sandbox alone, read-only, in
    # front of the factory's (until 2026-12-04 a ValueError).
    site, own = tmp_path / "site", tmp_path / "own"
    for d, value in ((site, "factory"), (own, "own")):
        (d / "pkg").mkdir(parents=True)
        (d / "pkg" / "__init__.py").write_text(f"WHO = {value!r}\n")
    (own / "extra.py").write_text("X = 7\n")
    f = eryx.SandboxFactory(site_packages=site)
    sb = f.create_sandbox(site_packages=own)
    code = "import pkg, extra\nprint(pkg.WHO, extra.X)"
    # Every execute starts again from the factory's state: each finds them.
    assert sb.execute(code).stdout == "own 7\n"
    assert sb.execute(code).stdout == "own 7\n"
    with pytest.raises(eryx.ExecutionError, match="OSError|PermissionError|Read-only"):
        sb.execute("open('/eryx-site-packages/new.py', 'w')")
    # Others of the factory do not see them.
    assert f.create_sandbox().execute("import pkg; print(pkg.WHO)").stdout == "factory\n"
    with pytest.raises(eryx.ExecutionError, match="ModuleNotFoundError"):
        f.create_sandbox().execute("import extra")
    # A session keeps them across reset(); the caller's PYTHONPATH follows.
    s = f.create_session(site_packages=str(own), env={"PYTHONPATH": "/mnt/lib", "A": "1"})
    probe = "import sys, os, extra\nprint(sys.path[:2], os.environ['A'])"
    assert s.execute(probe).stdout == "['/eryx-site-packages', '/mnt/lib'] 1\n"
    s.reset()
    assert s.execute(probe).stdout == "['/eryx-site-packages', '/mnt/lib'] 1\n"
    s.close()
    with pytest.raises(eryx.InitializationError, match="not a directory"):
        f.create_sandbox(site_packages=tmp_path / "missing")


def test_pythonpath_in_the_environment_goes_on_sys_path(tmp_path):
    # As python does at its start: PYTHONPATH's directories first.
    (tmp_path / "mod_on_path.py").write_text("V = 3\n")
    with eryx.Sandbox(volumes=[(str(tmp_path), "/lib", True)],
                      env={"PYTHONPATH": "/lib:/nowhere"}) as sb:
        r = sb.execute("import sys, mod_on_path\nprint(mod_on_path.V, sys.path[:2])")
        assert r.stdout == "3 ['/lib', '/nowhere']\n"


def test_factory_setup_failure_is_initialization_error():
    with pytest.raises(eryx.InitializationError, match="ModuleNotFoundError"):
        eryx.SandboxFactory(imports=["no_such_module_here"])
    with pytest.raises(eryx.InitializationError, match="ZeroDivisionError"):
        eryx.SandboxFactory(setup_code="1/0")
    with pytest.raises(TypeError):
        eryx.SandboxFactory(imports="json")


def test_factory_callbacks_default():
    f = eryx.SandboxFactory(callbacks=[{"name": "seven", "fn": lambda: 7}])
    assert f.create_sandbox().execute("print(await seven())").stdout == "7\n"


def test_pool_acquire_release_and_stats():
    pool = eryx.SandboxPool(max_size=2, min_idle=1, acquire_timeout_ms=200)
    with pool.acquire() as sb:
        sb.execute("x = 5")
        assert sb.execute("print(x)").stdout == "5\n"
    with pool.acquire() as sb:
        assert sb.execute("print('x' in globals())").stdout == "False\n"
    a = pool.acquire()
    b = pool.try_acquire()
    assert b is not None
    assert pool.try_acquire() is None
    t = time.monotonic()
    with pytest.raises(eryx.PoolTimeoutError):
        pool.acquire()
    assert time.monotonic() - t >= 0.15
    st = pool.stats()
    assert st.in_use == 2 and st.available == 0 and st.total_acquisitions >= 4
    a.release()
    a.release()
    with pytest.raises(ValueError, match="released"):
        a.execute("pass")
    with pytest.raises(ValueError, match="released"):  # was "is closed"
        asyncio.run(a.execute_async("pass"))
    b.release()
    pool.close()
    assert pool.is_closed
    with pytest.raises(eryx.PoolClosedError):
        pool.acquire()
    # The counters outlive the pool (they read as zeros until 2026-12-07).
    after = pool.stats()
    assert after.total_acquisitions == st.total_acquisitions
    assert after.total_creations == st.total_creations >= 2
    assert after.in_use == after.available == 0


def test_pool_lease_reset_revives_a_dead_one():
    # A lease a run left dead (os._exit; a hard stop does the same) was
    # told to "reset() the session", which it had no method for: it stayed
    # unusable until released.
    pool = eryx.SandboxPool(max_size=1, min_idle=0)
    with pool.acquire() as lease:
        lease.execute("x = 1")
        lease.execute("import os; os._exit(3)")
        with pytest.raises(eryx.EryxError, match="reset"):
            lease.execute("print(1)")
        lease.reset()
        assert lease.execute("print('x' in globals())").stdout == "False\n"
    with pytest.raises(ValueError, match="released"):
        lease.reset()
    pool.close()


def test_pool_lease_outlives_close():
    pool = eryx.SandboxPool(max_size=1)
    lease = pool.acquire()
    pool.close()
    assert lease.execute("print(1)").stdout == "1\n"
    lease.release()


def test_pool_close_wakes_a_waiting_acquire():
    # The waiter got PoolTimeoutError after its whole timeout (5 s), not
    # the PoolClosedError close() promises.
    for pool in (eryx.SandboxPool(max_size=1, acquire_timeout_ms=5000),
                 eryx.SandboxFactory(setup_code="X = 1").create_pool(
                     max_size=1, acquire_timeout_ms=5000)):
        lease = pool.acquire()
        got = []

        def wait():
            t = time.monotonic()
            try:
                pool.acquire()
            except Exception as exc:  # noqa: BLE001 (the type is the check)
                got.append((type(exc), time.monotonic() - t))

        th = threading.Thread(target=wait)
        th.start()
        time.sleep(0.3)  # (it waits by then; if not, it meets the closed pool)
        pool.close()
        th.join(10)
        assert got and got[0][0] is eryx.PoolClosedError and got[0][1] < 2, got
        assert lease.execute("print(1)").stdout == "1\n"
        lease.release()


def test_pool_release_inside_another_sandboxs_output():
    # Given back from on_stdout (or a finalizer that runs there), the lease
    # cannot be warmed up on that thread: it is let go, and its place comes
    # back (the release was refused, and the binding lost the place).
    pool = eryx.SandboxPool(max_size=1)

    def on_out(_text):
        with pool.acquire():
            pass

    eryx.Sandbox(on_stdout=on_out).execute("print('x')")
    assert pool.stats().in_use == 0
    with pool.acquire() as sb:
        assert sb.execute("print(1)").stdout == "1\n"
    pool.close()


def test_pool_per_lease_limits_and_output():
    pool = eryx.SandboxPool(max_size=2)
    chunks = []
    with pool.acquire(resource_limits=eryx.ResourceLimits(execution_timeout_ms=100),
                      on_stdout=chunks.append) as sb:
        sb.execute("print('streamed')")
        with pytest.raises(eryx.TimeoutError):
            sb.execute("while True: pass")
    assert chunks == ["streamed\n"]
    with pytest.raises(ValueError, match="per-lease callbacks"):
        pool.acquire(callbacks=[{"name": "f", "fn": len}])
    pool.close()


def test_pool_from_threads():
    pool = eryx.SandboxPool(max_size=3, callbacks=[{"name": "sq", "fn": lambda n: n * n}])
    out = []

    def work(i):
        with pool.acquire() as sb:
            out.append(sb.execute(f"print(await sq({i}))").stdout)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == sorted(f"{i * i}\n" for i in range(8))
    assert pool.stats().total_creations <= 3
    pool.close()


def test_pool_bad_arguments():
    with pytest.raises(ValueError):
        eryx.SandboxPool(max_size=0)
    with pytest.raises(ValueError):
        eryx.SandboxPool(max_size=-1)


def test_factory_pool():
    f = eryx.SandboxFactory(setup_code="base = [1]", callbacks=[{"name": "ten", "fn": lambda: 10}])
    pool = f.create_pool(max_size=2, min_idle=1, acquire_timeout_ms=100)
    with pool.acquire() as sb:
        sb.execute("base.append(await ten())")
        assert sb.execute("print(base)").stdout == "[1, 10]\n"
    with pool.acquire() as sb:
        assert sb.execute("print(base)").stdout == "[1]\n"
    a, b = pool.acquire(), pool.try_acquire()
    assert b is not None and pool.try_acquire() is None
    with pytest.raises(eryx.PoolTimeoutError):
        pool.acquire()
    st = pool.stats()
    assert st.in_use == 2 and st.total_acquisitions == 4
    a.release()
    b.release()
    assert pool.stats().in_use == 0
    pool.close()
    with pytest.raises(eryx.PoolClosedError):
        pool.acquire()


def test_runtime_image_fields_match_the_build(tmp_path):
    from eryx import _eryx
    if _eryx.HAVE_IMAGE_FILES:
        rt = _eryx.Runtime(imports=["fractions"], setup_code="X = 5")
        assert rt.image_size > 0
        rt.save_image(str(tmp_path / "img"))
        again = _eryx.Runtime(image_path=str(tmp_path / "img"))
        h = _eryx.SandboxHandle(again)
        assert h.run("print(X)").stdout == "5\n"
        h.close()
        with pytest.raises(eryx.InitializationError):
            _eryx.Runtime(setup_code="1/0")
    else:
        with pytest.raises(eryx.EryxError, match="ERYX_HAVE_IMAGE_FILES"):
            _eryx.Runtime(imports=["json"])
        with pytest.raises(eryx.EryxError, match="ERYX_HAVE_IMAGE_FILES"):
            _eryx.default_runtime().save_image(str(tmp_path / "img"))


def test_factory_file_mode_save_replaces_a_link(tmp_path, monkeypatch):
    # A factory of a liberyx without image files (forced here) is a session
    # file: save() writes a temporary file of its own (O_EXCL, a random
    # name) and renames it over the path, so a symbolic link there is
    # replaced, what it named is untouched, and nothing is left beside it.
    # The temporary file was PATH.tmpPID, opened for writing whatever was
    # there: a link at that name sent the factory's bytes over its target.
    from eryx import _factory
    monkeypatch.setattr(_factory._eryx, "HAVE_IMAGE_FILES", False)
    f = eryx.SandboxFactory(imports=["fractions"], setup_code="X = 6")
    assert f._rt is None
    victim = tmp_path / "victim"
    victim.write_text("victim")
    path = tmp_path / "f.bin"
    os.symlink(victim, path)
    os.symlink(victim, f"{path}.tmp{os.getpid()}")
    f.save(path)
    assert victim.read_text() == "victim"
    assert not path.is_symlink()
    assert path.stat().st_mode & 0o777 == 0o644  # readable as liberyx's images (not 0600)
    os.unlink(f"{path}.tmp{os.getpid()}")
    assert sorted(os.listdir(tmp_path)) == ["f.bin", "victim"]
    g = eryx.SandboxFactory.load(path)
    assert g.create_sandbox().execute("print(X)").stdout == "6\n"


def test_no_sandbox_may_write_a_loaded_image_file(tmp_path):
    # A loaded image's memory is mapped from its file: a guest with a
    # writable mount of its directory rewrote the memory of every sandbox
    # made from it (a later tenant's and a running session's), and a
    # truncation crashed the host with SIGBUS, until 2026-12-07. Writes to
    # the file are refused (ETXTBSY) while an image of it lives, also
    # through a descriptor opened before it was loaded.
    path = str(tmp_path / "app.img")
    eryx.SandboxFactory(setup_code='MARK = "ORIGINAL"').save(path)
    attacker = eryx.Session(volumes=[(str(tmp_path), "/work", False)])
    attacker.execute('early = open("/work/app.img", "r+b")')
    f = eryx.SandboxFactory.load(path)
    victim = f.create_session()
    assert victim.execute("print(MARK)").stdout == "ORIGINAL\n"
    r = attacker.execute(textwrap.dedent("""
        import errno, os
        data = open("/work/app.img", "rb").read()       # reading is fine
        i = data.find(b"ORIGINAL")
        print(i > 0)
        tries = [lambda: open("/work/app.img", "r+b"),
                 lambda: open("/work/app.img", "wb"),
                 lambda: open("/work/app.img", "ab"),
                 lambda: os.truncate("/work/app.img", 0),
                 lambda: (early.seek(i), early.write(b"HACKED!!"), early.flush()),
                 lambda: early.truncate(0)]
        for t in tries:
            try:
                t()
                print("wrote")
            except OSError as e:
                print(e.errno == errno.ETXTBSY)
    """))
    assert r.stdout == "True\n" + "True\n" * 6, r.stdout + r.stderr
    assert victim.execute("print(MARK)").stdout == "ORIGINAL\n"
    assert f.create_sandbox().execute("print(MARK)").stdout == "ORIGINAL\n"
    # Once no image of the file is left, it is an ordinary file again.
    del victim, f
    import gc
    gc.collect()
    r = attacker.execute('open("/work/app.img", "ab").close(); print("ok")')
    assert r.stdout == "ok\n", r.stderr
