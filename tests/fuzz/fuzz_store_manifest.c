/*
 * The session store's manifest decoder (cli/serve_store.c): a manifest
 * comes from Redis, over the network, and is checked before anything is
 * read by it. Properties beyond "no crash, no leak": an accepted manifest's
 * size is exactly its header and entries, its chunk size is a power of two
 * in range, its length within the limit, its indices strictly increasing
 * below the chunk count; encoding what was decoded gives the same bytes.
 */
#include "fuzz.h"
#include "serve_store_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_manifest m;
    if (store_manifest_decode(data, size, &m) != STORE_OK)
        return 0;
    FUZZ_CHECK(size == STORE_MANIFEST_HEAD + (size_t)m.count * STORE_MANIFEST_ENTRY);
    FUZZ_CHECK(m.chunk_size >= 4096 && m.chunk_size <= (1u << 20) &&
               (m.chunk_size & (m.chunk_size - 1)) == 0);
    FUZZ_CHECK(m.version > 0 && m.length <= STORE_MAX_LEN);
    uint64_t nchunks = (m.length + m.chunk_size - 1) / m.chunk_size;
    uint32_t *index = malloc((m.count ? m.count : 1) * sizeof *index);
    uint8_t *hashes = malloc((m.count ? m.count : 1) * (size_t)STORE_HASH);
    FUZZ_CHECK(index && hashes);
    for (uint32_t i = 0; i < m.count; i++) {
        index[i] = store_manifest_index(&m, i);
        FUZZ_CHECK(index[i] < nchunks && (i == 0 || index[i] > index[i - 1]));
        memcpy(hashes + (size_t)i * STORE_HASH, store_manifest_hash(&m, i), STORE_HASH);
    }
    size_t n = 0;
    uint8_t *again = store_manifest_encode(m.version, m.length, m.chunk_size, m.count, index,
                                           hashes, &n);
    FUZZ_CHECK(again && n == size && memcmp(again, data, size) == 0);
    free(again);
    free(hashes);
    free(index);
    return 0;
}
