# cython: language_level=3
"""Signing with a responder key through libcrypto, one signing context per key.

cryptography makes (and provider-fetches) a new EVP_PKEY_CTX for every
signature: about 9 µs of a 49 µs P-256 signature on the reference machine.
Here the context is made once and reused (EVP_PKEY_sign may be called again
on an initialised context), as ``openssl speed`` does: the signature costs
what libcrypto's ECDSA costs. The digest is taken here too, with the digest
fetched from the provider once and a digest context kept beside the signing
context (OpenSSL 3's one-shot SHA256() fetches the algorithm by name on every
call: 1.1 µs a digest against 0.34 µs), so a message goes in and a signature
comes out, with the GIL released.

This module holds key material and is kept apart from the OCSP core
(``va._fastocsp``), which parses untrusted input and holds none. The key
arrives as encrypted PKCS#8 with a one-time passphrase (va/signing.py), so
no unencrypted copy of it is ever a Python object. Its twin is the
cryptography path in va/signing.py; tests verify both with cryptography and
openssl, and compare RSA PKCS#1 v1.5 signatures (deterministic) byte for byte.

libcrypto is the libcrypto.so.3 Python's hashlib loads; its prototypes are
declared here, so the OpenSSL headers (libssl-dev) are not needed.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc

from va.errors import SigningError

cdef extern from *:
    """
    typedef struct evp_pkey_st EVP_PKEY;
    typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
    typedef struct evp_md_st EVP_MD;
    typedef struct evp_md_ctx_st EVP_MD_CTX;
    typedef struct bio_st BIO;
    typedef struct engine_st ENGINE;
    BIO *BIO_new_mem_buf(const void *buf, int len);
    int BIO_free(BIO *a);
    EVP_PKEY *d2i_PKCS8PrivateKey_bio(BIO *bp, EVP_PKEY **x, void *cb, void *u);
    void EVP_PKEY_free(EVP_PKEY *pkey);
    int EVP_PKEY_get_base_id(const EVP_PKEY *pkey);
    int EVP_PKEY_get_size(const EVP_PKEY *pkey);
    EVP_PKEY_CTX *EVP_PKEY_CTX_new(EVP_PKEY *pkey, ENGINE *e);
    void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx);
    int EVP_PKEY_sign_init(EVP_PKEY_CTX *ctx);
    int EVP_PKEY_CTX_set_signature_md(EVP_PKEY_CTX *ctx, const EVP_MD *md);
    int EVP_PKEY_CTX_set_rsa_padding(EVP_PKEY_CTX *ctx, int pad);
    int EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig, size_t *siglen,
                      const unsigned char *tbs, size_t tbslen);
    EVP_MD *EVP_MD_fetch(void *libctx, const char *algorithm, const char *properties);
    void EVP_MD_free(EVP_MD *md);
    EVP_MD_CTX *EVP_MD_CTX_new(void);
    void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
    int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
    int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt);
    int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s);
    unsigned long ERR_get_error(void);
    void ERR_clear_error(void);
    void ERR_error_string_n(unsigned long e, char *buf, size_t len);
    #define REVOCA_EVP_PKEY_RSA 6
    #define REVOCA_EVP_PKEY_EC 408
    #define REVOCA_RSA_PKCS1_PADDING 1
    """
    ctypedef struct EVP_PKEY
    ctypedef struct EVP_PKEY_CTX
    ctypedef struct EVP_MD
    ctypedef struct EVP_MD_CTX
    ctypedef struct BIO
    ctypedef struct ENGINE
    BIO* BIO_new_mem_buf(const void* buf, int len)
    int BIO_free(BIO* a)
    EVP_PKEY* d2i_PKCS8PrivateKey_bio(BIO* bp, EVP_PKEY** x, void* cb, void* u)
    void EVP_PKEY_free(EVP_PKEY* pkey)
    int EVP_PKEY_get_base_id(const EVP_PKEY* pkey)
    int EVP_PKEY_get_size(const EVP_PKEY* pkey)
    EVP_PKEY_CTX* EVP_PKEY_CTX_new(EVP_PKEY* pkey, ENGINE* e)
    void EVP_PKEY_CTX_free(EVP_PKEY_CTX* ctx)
    int EVP_PKEY_sign_init(EVP_PKEY_CTX* ctx)
    int EVP_PKEY_CTX_set_signature_md(EVP_PKEY_CTX* ctx, const EVP_MD* md)
    int EVP_PKEY_CTX_set_rsa_padding(EVP_PKEY_CTX* ctx, int pad)
    int EVP_PKEY_sign(EVP_PKEY_CTX* ctx, unsigned char* sig, size_t* siglen,
                      const unsigned char* tbs, size_t tbslen) nogil
    EVP_MD* EVP_MD_fetch(void* libctx, const char* algorithm, const char* properties)
    void EVP_MD_free(EVP_MD* md)
    EVP_MD_CTX* EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX* ctx)
    int EVP_DigestInit_ex(EVP_MD_CTX* ctx, const EVP_MD* type, ENGINE* impl) nogil
    int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* d, size_t cnt) nogil
    int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* md, unsigned int* s) nogil
    unsigned long ERR_get_error()
    void ERR_clear_error()
    void ERR_error_string_n(unsigned long e, char* buf, size_t len)
    int REVOCA_EVP_PKEY_RSA
    int REVOCA_EVP_PKEY_EC
    int REVOCA_RSA_PKCS1_PADDING

cdef enum:
    MAX_DIGEST = 48


cdef str _openssl_error(str what):
    cdef char text[256]
    cdef unsigned long code = ERR_get_error()
    ERR_clear_error()
    if code == 0:
        return what
    ERR_error_string_n(code, text, sizeof(text))
    return f"{what}: {text.decode('ascii', 'replace')}"


cdef class EVPSigner:
    """One private key (EC with SHA-256/384, or RSA PKCS#1 v1.5 with SHA-256)
    and one signing context for it.

    Safe from several threads: a call that finds the contexts in use by
    another thread signs with contexts of its own (made and freed for that
    call), so signing threads never share one.
    """

    cdef EVP_PKEY* pkey
    cdef EVP_PKEY_CTX* ctx
    cdef EVP_MD_CTX* md_ctx
    cdef EVP_MD* md
    cdef int digest_size
    cdef int family
    cdef Py_ssize_t max_signature
    cdef bint busy
    cdef readonly str digest

    def __cinit__(self, bytes encrypted_pkcs8 not None, bytes passphrase not None,
                  str family not None, str digest not None):
        self.pkey = NULL
        self.ctx = NULL
        self.md_ctx = NULL
        self.md = NULL
        if b"\x00" in passphrase:
            raise ValueError("the passphrase must not contain NUL")
        if PyBytes_GET_SIZE(encrypted_pkcs8) > 0x7FFFFFFF:  # BIO_new_mem_buf takes an int
            raise ValueError("the key is too large")
        if digest == "sha256":
            self.digest_size = 32
        elif digest == "sha384":
            self.digest_size = 48
        else:
            raise ValueError(f"unsupported digest {digest!r}")
        if family == "ec":
            self.family = REVOCA_EVP_PKEY_EC
        elif family == "rsa":
            if digest != "sha256":
                raise ValueError("RSA responder keys sign with SHA-256")
            self.family = REVOCA_EVP_PKEY_RSA
        else:
            raise ValueError(f"unsupported key family {family!r}")
        self.digest = digest
        ERR_clear_error()
        self.md = EVP_MD_fetch(NULL, b"SHA256" if digest == "sha256" else b"SHA384", NULL)
        if self.md == NULL:
            raise SigningError(_openssl_error(f"libcrypto has no {digest}"))
        cdef BIO* bio = BIO_new_mem_buf(PyBytes_AS_STRING(encrypted_pkcs8),
                                        <int>PyBytes_GET_SIZE(encrypted_pkcs8))
        if bio == NULL:
            raise MemoryError()
        self.pkey = d2i_PKCS8PrivateKey_bio(bio, NULL, NULL,
                                            <void*>PyBytes_AS_STRING(passphrase))
        BIO_free(bio)
        if self.pkey == NULL:
            raise SigningError(_openssl_error("libcrypto could not load the responder key"))
        if EVP_PKEY_get_base_id(self.pkey) != self.family:
            raise SigningError(f"the key is not an {family.upper()} key")
        self.max_signature = EVP_PKEY_get_size(self.pkey)
        self.ctx = self._new_context()
        self.md_ctx = EVP_MD_CTX_new()
        if self.md_ctx == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.ctx != NULL:
            EVP_PKEY_CTX_free(self.ctx)
        if self.md_ctx != NULL:
            EVP_MD_CTX_free(self.md_ctx)
        if self.md != NULL:
            EVP_MD_free(self.md)
        if self.pkey != NULL:
            EVP_PKEY_free(self.pkey)

    cdef EVP_PKEY_CTX* _new_context(self) except NULL:
        cdef EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(self.pkey, NULL)
        if ctx == NULL:
            raise SigningError(_openssl_error("libcrypto could not make a signing context"))
        if (EVP_PKEY_sign_init(ctx) != 1
                or EVP_PKEY_CTX_set_signature_md(ctx, self.md) != 1
                or (self.family == REVOCA_EVP_PKEY_RSA
                    and EVP_PKEY_CTX_set_rsa_padding(ctx, REVOCA_RSA_PKCS1_PADDING) != 1)):
            EVP_PKEY_CTX_free(ctx)
            raise SigningError(_openssl_error("libcrypto could not set up signing"))
        return ctx

    def sign(self, bytes message not None) -> bytes:
        """The signature of ``message`` (hashed here with the key's digest)."""
        return self.sign_many([message])[0]

    def sign_many(self, list messages not None) -> list:
        """The signature of each message, back to back, with the GIL released
        once for the whole list (bulk pre-signing, a loop iteration's fresh
        answers)."""
        cdef list held = list(messages)  # ours alone: no other thread can drop an item
        cdef Py_ssize_t count = len(held), i
        cdef object message
        for message in held:
            if type(message) is not bytes:
                raise TypeError("every message must be bytes")
        if count == 0:
            return []
        cdef list out = [PyBytes_FromStringAndSize(NULL, self.max_signature)
                         for i in range(count)]
        cdef const unsigned char** data = <const unsigned char**>malloc(count * sizeof(void*))
        cdef unsigned char** targets = <unsigned char**>malloc(count * sizeof(void*))
        cdef size_t* sizes = <size_t*>malloc(count * sizeof(size_t))
        cdef size_t* lengths = <size_t*>malloc(count * sizeof(size_t))
        cdef EVP_PKEY_CTX* ctx = NULL
        cdef EVP_MD_CTX* md_ctx = NULL
        cdef const EVP_MD* md = self.md
        cdef bint own = False
        cdef Py_ssize_t failed = -1
        cdef unsigned char digest[MAX_DIGEST]
        cdef unsigned int digest_length = 0
        cdef size_t digest_size = <size_t>self.digest_size
        try:
            if data == NULL or targets == NULL or sizes == NULL or lengths == NULL:
                raise MemoryError()
            for i in range(count):
                data[i] = <const unsigned char*>PyBytes_AS_STRING(held[i])
                sizes[i] = <size_t>PyBytes_GET_SIZE(held[i])
                targets[i] = <unsigned char*>PyBytes_AS_STRING(out[i])
                lengths[i] = <size_t>self.max_signature
            if self.busy:
                own = True
                md_ctx = EVP_MD_CTX_new()
                if md_ctx == NULL:
                    raise MemoryError()
                try:
                    ctx = self._new_context()
                except BaseException:
                    EVP_MD_CTX_free(md_ctx)
                    raise
            else:
                ctx, md_ctx, self.busy = self.ctx, self.md_ctx, True
            try:
                # ``held`` and ``out`` keep every buffer alive; Python does
                # not touch them while the GIL is released.
                with nogil:
                    for i in range(count):
                        if (EVP_DigestInit_ex(md_ctx, md, NULL) != 1
                                or EVP_DigestUpdate(md_ctx, data[i], sizes[i]) != 1
                                or EVP_DigestFinal_ex(md_ctx, digest, &digest_length) != 1
                                or digest_length != digest_size
                                or EVP_PKEY_sign(ctx, targets[i], &lengths[i], digest,
                                                 digest_size) != 1):
                            failed = i
                            break
            finally:
                if own:
                    EVP_PKEY_CTX_free(ctx)
                    EVP_MD_CTX_free(md_ctx)
                else:
                    self.busy = False
            if failed >= 0:
                raise SigningError(_openssl_error("libcrypto could not sign"))
            for i in range(count):
                if lengths[i] > <size_t>self.max_signature:
                    raise SigningError("libcrypto returned an oversized signature")
                if lengths[i] != <size_t>self.max_signature:
                    out[i] = out[i][:lengths[i]]  # DER ECDSA-Sig-Value is often shorter
            return out
        finally:
            free(data)
            free(targets)
            free(sizes)
            free(lengths)
