# A wheel written with Python's zipfile and a setup file.
python3 -c "
import zipfile
with zipfile.ZipFile('demo-1.0-py3-none-any.whl', 'w') as z:
    z.writestr('demo/__init__.py', 'def hello(): return \"hello from a wheel\"\n')
    z.writestr('demo-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n')
"
printf 'import demo\nMSG = demo.hello()\n' > setup.py
$ERYX image build -o w.img --wheel demo-1.0-py3-none-any.whl --setup-file setup.py || exit 9
rm demo-1.0-py3-none-any.whl
$ERYX --image w.img -c 'print(MSG); import demo; print(demo.hello is demo.hello)'
# The packages' bytecode is in the image, unless --no-bytecode.
mkdir bc && printf 'V = 1\n' > bc/bcmod.py
$ERYX image build -o bc.img --site-packages bc || exit 9
$ERYX image build -o nobc.img --site-packages bc --no-bytecode || exit 9
$ERYX --image bc.img -c 'import os; print(sorted(os.listdir("/usr/lib/python3.13/site-packages")))'
$ERYX --image nobc.img -c 'import os; print(sorted(os.listdir("/usr/lib/python3.13/site-packages")))'
