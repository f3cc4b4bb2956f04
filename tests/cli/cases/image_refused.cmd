# An image file that is damaged, truncated or not an image: exit 71 and
# the reason; never run.
$ERYX image build -o ok.img --setup-code 'x = 1' || exit 9
cp ok.img flipped.img && printf '\377' | dd of=flipped.img bs=1 seek=70000 conv=notrunc status=none
$ERYX --image flipped.img -c 'print(x)'; echo "status $?"
head -c 10000 ok.img > short.img
$ERYX --image short.img -c 'print(x)'; echo "status $?"
echo hello > text.img
$ERYX --image text.img -c 'print(x)'; echo "status $?"
$ERYX --image missing.img -c 'print(x)'; echo "status $?"
$ERYX --image ok.img -c 'print(x)'; echo "status $?"
