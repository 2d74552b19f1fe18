/* Where a P-256 signature's time goes in the system's libcrypto: the numbers
 * behind "where a P-256 signature goes" in benchmarks/RESULTS.md.
 *
 *   gcc -O2 -Wno-deprecated-declarations benchmarks/c/ecdsa_cost.c \
 *       -o /tmp/ecdsa_cost -lcrypto && taskset -c 1 /tmp/ecdsa_cost [CALLS]
 *
 * (needs libssl-dev). Each line: microseconds per call (CALLS of each,
 * default 20,000), two rounds. benchmarks/test_c_smoke.py builds and runs
 * it with a few calls so it cannot rot. The
 * legacy EC_KEY calls are here only to take the signature apart; the VA
 * signs with EVP_PKEY_sign on a kept context (va/_evpsign.pyx).
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int N = 20000;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void report(const char *what, double started)
{
    printf("%-58s %7.2f us\n", what, (now() - started) / N * 1e6);
}

int main(int argc, char **argv)
{
    unsigned char digest[32] = {1}, message[200] = {2}, sig[128], buf[64], md[64];
    size_t length;
    unsigned int md_length;
    double t;
    if (argc > 1 && (N = atoi(argv[1])) <= 0) {
        fprintf(stderr, "usage: %s [CALLS]\n", argv[0]);
        return 2;
    }
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
    EC_KEY *eckey = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *bn_ctx = BN_CTX_new();
    BIGNUM *k = BN_new();
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();

    if (pkey == NULL || ctx == NULL || eckey == NULL || bn_ctx == NULL || k == NULL
        || sha256 == NULL || md_ctx == NULL || EVP_PKEY_sign_init(ctx) != 1
        || EC_KEY_generate_key(eckey) != 1) {
        fprintf(stderr, "libcrypto setup failed\n");
        return 1;
    }
    const BIGNUM *order = EC_GROUP_get0_order(EC_KEY_get0_group(eckey));
    for (int round = 0; round < 2; round++) {
        t = now();
        for (int i = 0; i < N; i++) {
            length = sizeof sig;
            EVP_PKEY_sign(ctx, sig, &length, digest, sizeof digest);
        }
        report("EVP_PKEY_sign, context kept", t);
        t = now();
        for (int i = 0; i < N; i++)
            ECDSA_SIG_free(ECDSA_do_sign(digest, sizeof digest, eckey));
        report("ECDSA_do_sign (legacy EC_KEY)", t);
        t = now();
        for (int i = 0; i < N; i++)
            BN_generate_dsa_nonce(k, order, EC_KEY_get0_private_key(eckey), digest,
                                  sizeof digest, bn_ctx);
        report("BN_generate_dsa_nonce (the hedged nonce)", t);
        t = now();
        for (int i = 0; i < N; i++)
            RAND_priv_bytes(buf, sizeof buf);
        report("RAND_priv_bytes, 64 bytes", t);
        t = now();
        for (int i = 0; i < N; i++) {
            BIGNUM *kinv = NULL, *r = NULL;
            ECDSA_sign_setup(eckey, bn_ctx, &kinv, &r);
            ECDSA_SIG_free(ECDSA_do_sign_ex(digest, sizeof digest, kinv, r, eckey));
            BN_clear_free(kinv);
            BN_clear_free(r);
        }
        report("ECDSA_sign_setup (plain random k) + ECDSA_do_sign_ex", t);
        t = now();
        for (int i = 0; i < N; i++)
            SHA256(message, sizeof message, md);
        report("SHA256() one-shot, 200 bytes", t);
        t = now();
        for (int i = 0; i < N; i++) {
            EVP_DigestInit_ex(md_ctx, sha256, NULL);
            EVP_DigestUpdate(md_ctx, message, sizeof message);
            EVP_DigestFinal_ex(md_ctx, md, &md_length);
        }
        report("EVP_Digest*, SHA-256 fetched once, context kept", t);
    }
    EVP_MD_CTX_free(md_ctx);
    EVP_MD_free(sha256);
    BN_free(k);
    BN_CTX_free(bn_ctx);
    EC_KEY_free(eckey);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return 0;
}
