// Minimal OpenSSL BIGNUM wrapper for SRP. Internal: values never leave a single computation.
import COpenSSL

final class BigNum {
    let ptr: OpaquePointer

    init() {
        guard let p = BN_new() else { fatalError("BN_new: out of memory") }
        ptr = p
    }

    init(_ bytes: [UInt8]) {
        let p = bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        guard let p else { fatalError("BN_bin2bn: out of memory") }
        ptr = p
    }

    convenience init(word: UInt) {
        self.init()
        BN_set_word(ptr, numericCast(word))
    }

    deinit { BN_clear_free(ptr) }

    var isZero: Bool { BN_is_zero(ptr) == 1 }
    var byteCount: Int { Int(copenssl_bn_num_bytes(ptr)) }

    /// Minimal big-endian encoding (empty for zero).
    var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        let n = out.withUnsafeMutableBufferPointer { BN_bn2bin(ptr, $0.baseAddress) }
        return Array(out.prefix(Int(n)))
    }

    /// Big-endian encoding left-padded with zeros to `length` bytes.
    func padded(to length: Int) -> [UInt8] {
        let b = bytes
        if b.count >= length { return b }
        return [UInt8](repeating: 0, count: length - b.count) + b
    }

    static func == (a: BigNum, b: BigNum) -> Bool { BN_cmp(a.ptr, b.ptr) == 0 }
}

/// Arithmetic context: one BN_CTX per computation.
final class BigNumContext {
    let ctx: OpaquePointer
    init() {
        guard let c = BN_CTX_new() else { fatalError("BN_CTX_new: out of memory") }
        ctx = c
    }
    deinit { BN_CTX_free(ctx) }

    /// base^exp mod m. `secret` selects the constant-time Montgomery ladder (exponent is secret).
    func modExp(_ base: BigNum, _ exp: BigNum, _ m: BigNum, secret: Bool) -> BigNum {
        let r = BigNum()
        let ok: Int32
        if secret {
            copenssl_bn_set_consttime(exp.ptr)
            ok = BN_mod_exp_mont_consttime(r.ptr, base.ptr, exp.ptr, m.ptr, ctx, nil)
        } else {
            ok = BN_mod_exp(r.ptr, base.ptr, exp.ptr, m.ptr, ctx)
        }
        precondition(ok == 1, "BN_mod_exp failed")
        return r
    }

    func modMul(_ a: BigNum, _ b: BigNum, _ m: BigNum) -> BigNum {
        let r = BigNum()
        precondition(BN_mod_mul(r.ptr, a.ptr, b.ptr, m.ptr, ctx) == 1)
        return r
    }

    func modAdd(_ a: BigNum, _ b: BigNum, _ m: BigNum) -> BigNum {
        let r = BigNum()
        precondition(BN_mod_add(r.ptr, a.ptr, b.ptr, m.ptr, ctx) == 1)
        return r
    }

    func modSub(_ a: BigNum, _ b: BigNum, _ m: BigNum) -> BigNum {
        let r = BigNum()
        precondition(BN_mod_sub(r.ptr, a.ptr, b.ptr, m.ptr, ctx) == 1)
        return r
    }

    /// a mod m, non-negative.
    func mod(_ a: BigNum, _ m: BigNum) -> BigNum {
        let r = BigNum()
        precondition(BN_nnmod(r.ptr, a.ptr, m.ptr, ctx) == 1)
        return r
    }

    func mul(_ a: BigNum, _ b: BigNum) -> BigNum {
        let r = BigNum()
        precondition(BN_mul(r.ptr, a.ptr, b.ptr, ctx) == 1)
        return r
    }

    func add(_ a: BigNum, _ b: BigNum) -> BigNum {
        let r = BigNum()
        precondition(BN_add(r.ptr, a.ptr, b.ptr) == 1)
        return r
    }
}
