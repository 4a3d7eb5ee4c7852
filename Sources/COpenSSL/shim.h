#ifndef SWIFT_ATV_COPENSSL_SHIM_H
#define SWIFT_ATV_COPENSSL_SHIM_H
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/evp.h>
/* BN_num_bytes is a macro: wrap it. */
static inline int copenssl_bn_num_bytes(const BIGNUM *a) { return BN_num_bytes(a); }
/* Mark a BIGNUM as secret so OpenSSL picks constant-time code paths for it. */
static inline void copenssl_bn_set_consttime(BIGNUM *a) { BN_set_flags(a, BN_FLG_CONSTTIME); }
#endif
