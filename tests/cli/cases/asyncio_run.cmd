$ERYX -c '
import asyncio
async def main():
    await asyncio.sleep(0.01)
    return 42
print(asyncio.run(main()))'
