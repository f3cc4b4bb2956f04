# A program larger than the sandbox's memory cannot run: it is refused once
# that much has been read, not read whole first (a 300 MB one took 590 MB).
head -c 40000000 /dev/zero | tr '\0' '#' >big.py
$ERYX --max-memory 32M big.py
echo "status $?"
$ERYX --max-memory 32M <big.py
echo "status $?"
