//! AWS Signature Version 4 for a request with a fixed set of headers.
//!
//! Canonical request, string to sign and signing key as the AWS General
//! Reference specifies; the payload hash covers the exact body bytes.

const h = @import("hermes");
const enc = h.enc;

pub const Credentials = struct {
    access_key_id: []const u8,
    secret_access_key: []const u8,
    session_token: ?[]const u8 = null,
};

/// A header to sign: `name` must already be lowercase, `value` trimmed.
pub const Header = struct { name: []const u8, value: []const u8 };

pub const Signed = struct {
    amz_date: []const u8,
    authorization: []const u8,
};

fn lessThan(a: Header, b: Header) bool {
    return enc.lessThan(a.name, b.name);
}

/// Sign `method path?query` with `headers` (which must include `host`,
/// `x-amz-date` and, with a session token, `x-amz-security-token`).
pub fn sign(
    creds: Credentials,
    region: []const u8,
    service: []const u8,
    method: []const u8,
    path: []const u8,
    canonical_query: []const u8,
    headers: []Header,
    body: []const u8,
    amz_date: []const u8,
) Signed {
    // Headers sorted by name (insertion sort: a handful of them).
    var i: usize = 1;
    while (i < headers.len) : (i += 1) {
        const item = headers[i];
        var j = i;
        while (j > 0 and lessThan(item, headers[j - 1])) : (j -= 1) headers[j] = headers[j - 1];
        headers[j] = item;
    }
    var canonical = h.mem.Bytes{};
    var signed_names = h.mem.Bytes{};
    canonical.appendSlice(method);
    canonical.append('\n');
    canonical.appendSlice(enc.uriEscaped(path, true));
    canonical.append('\n');
    canonical.appendSlice(canonical_query);
    canonical.append('\n');
    for (headers, 0..) |hd, k| {
        canonical.appendSlice(hd.name);
        canonical.append(':');
        canonical.appendSlice(hd.value);
        canonical.append('\n');
        if (k > 0) signed_names.append(';');
        signed_names.appendSlice(hd.name);
    }
    canonical.append('\n');
    canonical.appendSlice(signed_names.items());
    canonical.append('\n');
    canonical.appendSlice(enc.hex(h.crypto.sha256(body)));

    const date = amz_date[0..8];
    const scope = h.concat(&.{ date, "/", region, "/", service, "/aws4_request" });
    const string_to_sign = h.concat(&.{
        "AWS4-HMAC-SHA256\n",                        amz_date, "\n", scope, "\n",
        enc.hex(h.crypto.sha256(canonical.items())),
    });
    const k_date = h.crypto.hmacSha256(h.concat(&.{ "AWS4", creds.secret_access_key }), date);
    const k_region = h.crypto.hmacSha256(k_date, region);
    const k_service = h.crypto.hmacSha256(k_region, service);
    const k_signing = h.crypto.hmacSha256(k_service, "aws4_request");
    const signature = enc.hex(h.crypto.hmacSha256(k_signing, string_to_sign));
    return .{
        .amz_date = amz_date,
        .authorization = h.concat(&.{
            "AWS4-HMAC-SHA256 Credential=", creds.access_key_id, "/", scope,
            ", SignedHeaders=",             signed_names.items(),
            ", Signature=",                 signature,
        }),
    };
}
