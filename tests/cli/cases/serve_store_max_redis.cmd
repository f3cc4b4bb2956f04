$ERYX serve --redis redis://127.0.0.1:1 --store-max-bytes 5
