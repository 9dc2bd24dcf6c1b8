//! Hashes and MACs (std.crypto), returning bytes on the bump heap.

const std = @import("std");
const mem = @import("mem.zig");

const Sha1 = std.crypto.hash.Sha1;
const Sha256 = std.crypto.hash.sha2.Sha256;
const HmacSha1 = std.crypto.auth.hmac.HmacSha1;
const HmacSha256 = std.crypto.auth.hmac.sha2.HmacSha256;

pub fn sha256(msg: []const u8) []const u8 {
    const out = mem.alloc(Sha256.digest_length);
    Sha256.hash(msg, out[0..Sha256.digest_length], .{});
    return out;
}

pub fn hmacSha256(key: []const u8, msg: []const u8) []const u8 {
    const out = mem.alloc(HmacSha256.mac_length);
    HmacSha256.create(out[0..HmacSha256.mac_length], msg, key);
    return out;
}

pub fn hmacSha1(key: []const u8, msg: []const u8) []const u8 {
    const out = mem.alloc(HmacSha1.mac_length);
    HmacSha1.create(out[0..HmacSha1.mac_length], msg, key);
    return out;
}
