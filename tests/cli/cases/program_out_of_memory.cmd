# A program that fits in --max-memory but not with what reading it takes
# in the sandbox (its bytes, then its str) is the MemoryError of a program
# that runs out (status 125), saying so; it was "eryx: ERYX_INTERNAL:
# internal error in the sandbox glue", status 70. One that finds no room
# at all to be copied in is 125 too (it was 70). 20 MB and 60 MB of
# comments in 64 MiB (at the default 128 MiB, 35 MB did it).
head -c 20000000 /dev/zero | tr '\0' '#' > big.py
$ERYX --max-memory 64M big.py
echo "status $?"
head -c 60000000 /dev/zero | tr '\0' '#' > big.py
$ERYX --max-memory 64M big.py
echo "status $?"
