# Debian's jinja2 and markupsafe (python3-jinja2), pre-imported into an image
# with setup code; the image is used with -c, a session, a callback, stdin.
mkdir site && cp -r /usr/lib/python3/dist-packages/jinja2 /usr/lib/python3/dist-packages/markupsafe site/
$ERYX image build -o j.img --site-packages site --import jinja2 --setup-code 'T = __import__("jinja2").Template("<{{ x }}>")' || exit 9
rm -rf site
$ERYX --image j.img -c 'import sys; print("jinja2" in sys.modules, T.render(x=1))'
$ERYX --image j.img --session s.ses -c 'y = T.render(x="kept")' && $ERYX --image j.img --session s.ses -c 'print(y)'
$ERYX --image j.img --callback echo=cat -c 'print(await echo(v=T.render(x=2)))'
echo 'import markupsafe; print(markupsafe.escape("<a>"), markupsafe.escape.__module__)' | $ERYX --image j.img -
