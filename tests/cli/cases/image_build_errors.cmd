# Setup code that raises, a damaged wheel, a missing one, a wheel with a path outside its
# root, a native one: exit 1, a clear message, no image written.
$ERYX image build -o a.img --setup-code 'def f():
    raise ValueError("bad setup")
f()'; echo "status $?"
printf 'not a zip at all' > bad.whl
$ERYX image build -o b.img --wheel bad.whl; echo "status $?"
$ERYX image build -o b.img --wheel missing.whl; echo "status $?"
python3 -c "
import zipfile
with zipfile.ZipFile('up.whl', 'w') as z:
    z.writestr('../escape.py', 'x = 1')
    z.writestr('up-1.0.dist-info/WHEEL', 'Root-Is-Purelib: true\n')
with zipfile.ZipFile('native.whl', 'w') as z:
    z.writestr('fast/_speed.cpython-313-x86_64-linux-gnu.so', 'ELF')
    z.writestr('fast-1.0.dist-info/WHEEL', 'Root-Is-Purelib: false\n')
"
$ERYX image build -o c.img --wheel up.whl; echo "status $?"
$ERYX image build -o d.img --wheel native.whl; echo "status $?"
$ERYX image build -o e.img --setup-timeout 200 --setup-code 'while True: pass'; echo "status $?"
ls *.img 2>/dev/null | wc -l
