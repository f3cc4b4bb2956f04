# The code removes the --session file's directory during the run (a
# writable mount holds it): the save fails with a clear message, status
# 71 (EX_OSERR, the session could not be kept), and nothing is written
# anywhere else; the run's output is what it printed.
mkdir session_dir_removed && cd session_dir_removed  # its own directory: the cases share one
mkdir -p rm/m/d
$ERYX --mount "$PWD/rm/m:/data:rw" --session rm/m/d/s.img -c 'import os
x = 1
os.rmdir("/data/d")
print("removed")'; echo "status $?"
ls -A rm/m
