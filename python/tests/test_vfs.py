"""VfsStorage: files shared by sessions, kept across resets, safe for the host."""
import os

import pytest

import eryx


@pytest.fixture
def storage():
    s = eryx.VfsStorage()
    yield s
    s.close()


def test_files_persist_across_runs_resets_and_sessions(storage):
    with eryx.Session(vfs=storage) as a:
        a.execute("open('/data/note.txt', 'w').write('hello')")
        assert a.execute("print(open('/data/note.txt').read())").stdout == "hello\n"
        a.reset()
        a.clear_state()
        assert a.execute("print(open('/data/note.txt').read())").stdout == "hello\n"
        assert a.vfs is storage and a.vfs_mount_path == "/data"
    with eryx.Session(vfs=storage, vfs_mount_path="/shared") as b:
        r = b.execute("import os; print(os.listdir('/shared'), open('/shared/note.txt').read())")
        assert r.stdout == "['note.txt'] hello\n"
        assert b.vfs_mount_path == "/shared"
    assert storage.read_file("note.txt") == b"hello"
    assert storage.read_file("/note.txt") == b"hello"


def test_host_side_access(storage):
    storage.write_file("dir/sub/in.json", '{"a": 1}')
    assert storage.listdir() == ["dir"]
    assert storage.listdir("dir/sub") == ["in.json"]
    with eryx.Session(vfs=storage) as s:
        r = s.execute("import json; print(json.load(open('/data/dir/sub/in.json'))['a'])\n"
                      "open('/data/out.bin', 'wb').write(bytes(range(256)))")
        assert r.stdout == "1\n"
    assert storage.read_file("out.bin") == bytes(range(256))
    storage.remove("dir")
    assert storage.listdir() == ["out.bin"]
    with pytest.raises(FileNotFoundError):
        storage.read_file("dir/sub/in.json")
    for bad in ("../x", "a/../../x", "a\0b"):
        with pytest.raises(ValueError):
            storage.read_file(bad)
    with pytest.raises(ValueError):
        storage.remove("/")


def test_links_lead_neither_the_guest_nor_the_host_out(storage, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host only")
    with eryx.Session(vfs=storage) as s:
        r = s.execute(f"""
import os
for name, target in [("abs", {str(secret)!r}), ("up", "../../../../{secret.name}")]:
    try:
        os.symlink(target, "/data/" + name)
        print(name, "made")
    except OSError as e:
        print(name, "refused")
""")
        assert r.stdout == "abs refused\nup refused\n"
        # Links made on the host side (another program sharing the
        # directory) are not followed out of it by the guest either.
        os.symlink(str(secret), os.path.join(storage.path, "abs"))
        os.symlink(str(tmp_path), os.path.join(storage.path, "dirlink"))
        r = s.execute("""
for p in ["/data/abs", "/data/dirlink/secret"]:
    try:
        print(open(p).read())
    except OSError as e:
        print("refused", e.errno)
""")
        assert "host only" not in r.stdout and r.stdout.count("refused") == 2, r.stdout
    # Nor by the host's own methods, which follow no link at any step.
    for call in (lambda: storage.read_file("abs"), lambda: storage.write_file("abs", "x"),
                 lambda: storage.read_file("dirlink/secret"),
                 lambda: storage.write_file("dirlink/new", "x"),
                 lambda: storage.listdir("dirlink")):
        with pytest.raises(OSError):
            call()
    assert secret.read_text() == "host only" and not (tmp_path / "new").exists()
    storage.remove("dirlink")  # the link, not what it points at
    assert secret.read_text() == "host only"
    assert storage.listdir() == ["abs"]


def test_close_removes_only_its_own_directory(tmp_path):
    s = eryx.VfsStorage()
    path = s.path
    s.write_file("f", b"1")
    s.close()
    s.close()
    assert not os.path.exists(path)
    with pytest.raises(ValueError):
        s.read_file("f")
    given = eryx.VfsStorage(tmp_path)
    given.write_file("g", b"2")
    given.close()
    assert (tmp_path / "g").read_bytes() == b"2"
    with pytest.raises(ValueError):
        eryx.VfsStorage(tmp_path / "missing")


def test_wrong_arguments():
    with pytest.raises(TypeError):
        eryx.Session(vfs="/tmp")
    with pytest.raises(ValueError):
        eryx.Session(vfs_mount_path="/data")
    with eryx.VfsStorage() as s:
        with pytest.raises(ValueError):
            eryx.Session(vfs=s, vfs_mount_path="relative")


def test_host_side_misuse_loses_nothing(storage):
    # read_file of a directory leaked a descriptor a call (os.fdopen failed
    # on it and kept it), naming the fd as the file; write_file with data of
    # the wrong type emptied the file before the TypeError.
    storage.write_file("dir/f", b"1")
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        with pytest.raises(IsADirectoryError) as e:
            storage.read_file("dir")
    assert len(os.listdir("/proc/self/fd")) == fds
    assert e.value.filename == "dir"
    storage.write_file("keep.txt", b"precious")
    with pytest.raises(TypeError):
        storage.write_file("keep.txt", 12345)
    assert storage.read_file("keep.txt") == b"precious"
    os.mkfifo(os.path.join(storage.path, "fifo"))
    with pytest.raises(OSError):
        storage.read_file("fifo")  # neither hangs nor reads
    # Path objects are paths (they were refused); the root says what it is.
    import pathlib
    storage.write_file(pathlib.PurePosixPath("p/q.txt"), "text")
    assert storage.read_file(pathlib.PurePosixPath("p") / "q.txt") == b"text"
    with pytest.raises(IsADirectoryError, match="root"):
        storage.read_file("")


def test_fork_load_and_factory_sessions_keep_the_storage(storage, tmp_path):
    with eryx.Session(vfs=storage, vfs_mount_path="/work") as s:
        s.execute("open('/work/a', 'w').write('1')")
        with s.fork() as f:
            assert f.vfs is storage and f.vfs_mount_path == "/work"
            f.execute("open('/work/b', 'w').write('2')")
        path = str(tmp_path / "s.session")
        s.save(path)
    with eryx.Session.load(path, vfs=storage, vfs_mount_path="/work") as s:
        assert s.execute("print(sorted(__import__('os').listdir('/work')))").stdout == \
            "['a', 'b']\n"
    factory = eryx.SandboxFactory(imports=["json"])
    with factory.create_session(vfs=storage) as s:
        assert s.execute("print(open('/data/b').read())").stdout == "2\n"
