# An output that is one of the command's inputs is refused before anything
# is written (status 2): --trace's file truncated the program, or the
# session file, before either was read (the run then "succeeded" with
# nothing run, or the session was lost); `image build -o` replaced its
# --setup-file. A link to the input is the input, and a session file not
# made yet is one.
mkdir inputs_not_overwritten && cd inputs_not_overwritten  # its own directory: the cases share one
echo 'print("ran")' > prog.py && ln -s prog.py link.py
$ERYX --trace prog.py prog.py; echo "status $?"
$ERYX --trace link.py prog.py; echo "status $?"
$ERYX --trace prog.py < prog.py; echo "status $?"
echo data > in.txt
$ERYX --trace in.txt -c 'print(input())' < in.txt; echo "status $?"
$ERYX --remote ws://127.0.0.1:1 --token-file prog.py --trace t.jsonl -c pass; echo "status $?"
$ERYX --session s.img -c 'x = 1'; echo "status $?"
$ERYX --trace s.img --session s.img -c 'print(x)'; echo "status $?"
$ERYX --trace t.jsonl --session s.img -c 'print(x)'; echo "status $?"
# A session file not made yet: the trace made it, empty, and every later
# run refused it as "not an eryx session file".
$ERYX --trace new.img --session new.img -c 'x = 1'; echo "status $?"
ln -s new2.img dangling.img
$ERYX --session ./new2.img --trace dangling.img -c 'x = 1'; echo "status $?"
ls new.img new2.img 2>/dev/null; echo "made: $(ls new.img new2.img 2>/dev/null | wc -l)"
echo 'X = 1' > setup.py
$ERYX image build -o setup.py --setup-file setup.py; echo "status $?"
$ERYX image build -o ''; echo "status $?"
cat prog.py setup.py
