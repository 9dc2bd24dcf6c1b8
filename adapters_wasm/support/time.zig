//! Calendar arithmetic for timestamps (UTC only, proleptic Gregorian).

const mem = @import("mem.zig");

pub const DateTime = struct { year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8, ms: u16 };

// Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil).
pub fn daysFromCivil(y0: i64, m: u8, d: u8) i64 {
    const y = if (m <= 2) y0 - 1 else y0;
    const era = @divFloor(y, 400);
    const yoe = y - era * 400;
    const mp: i64 = if (m > 2) @as(i64, m) - 3 else @as(i64, m) + 9;
    const doy = @divFloor(153 * mp + 2, 5) + @as(i64, d) - 1;
    const doe = yoe * 365 + @divFloor(yoe, 4) - @divFloor(yoe, 100) + doy;
    return era * 146097 + doe - 719468;
}

pub fn fromUnixMs(ms_total: i64) DateTime {
    const days = @divFloor(ms_total, 86_400_000);
    const rem = ms_total - days * 86_400_000;
    const z = days + 719468;
    const era = @divFloor(z, 146097);
    const doe = z - era * 146097;
    const yoe = @divFloor(doe - @divFloor(doe, 1460) + @divFloor(doe, 36524) - @divFloor(doe, 146096), 365);
    const doy = doe - (365 * yoe + @divFloor(yoe, 4) - @divFloor(yoe, 100));
    const mp = @divFloor(5 * doy + 2, 153);
    const d = doy - @divFloor(153 * mp + 2, 5) + 1;
    const m = if (mp < 10) mp + 3 else mp - 9;
    const y = yoe + era * 400 + @as(i64, if (m <= 2) 1 else 0);
    return .{
        .year = y,
        .month = @intCast(m),
        .day = @intCast(d),
        .hour = @intCast(@divFloor(rem, 3_600_000)),
        .minute = @intCast(@mod(@divFloor(rem, 60_000), 60)),
        .second = @intCast(@mod(@divFloor(rem, 1000), 60)),
        .ms = @intCast(@mod(rem, 1000)),
    };
}

fn put(out: *mem.Bytes, n: i64, width: usize) void {
    var buf: [8]u8 = undefined;
    var v: u64 = @intCast(if (n < 0) 0 else n);
    var i: usize = width;
    while (i > 0) {
        i -= 1;
        buf[i] = @intCast('0' + v % 10);
        v /= 10;
    }
    out.appendSlice(buf[0..width]);
}

/// `YYYYMMDDTHHMMSSZ` (AWS SigV4 `X-Amz-Date`).
pub fn amzDate(ms: i64) []const u8 {
    const t = fromUnixMs(ms);
    var out = mem.Bytes{};
    put(&out, t.year, 4);
    put(&out, t.month, 2);
    put(&out, t.day, 2);
    out.append('T');
    put(&out, t.hour, 2);
    put(&out, t.minute, 2);
    put(&out, t.second, 2);
    out.append('Z');
    return out.items();
}

fn num(s: []const u8, i: *usize, width: usize) ?i64 {
    if (i.* + width > s.len) return null;
    var n: i64 = 0;
    for (s[i.* .. i.* + width]) |c| {
        if (c < '0' or c > '9') return null;
        n = n * 10 + (c - '0');
    }
    i.* += width;
    return n;
}

fn expect(s: []const u8, i: *usize, c: u8) ?void {
    if (i.* >= s.len or s[i.*] != c) return null;
    i.* += 1;
}

/// Parse RFC 3339 / ISO 8601 (`2024-01-02T03:04:05.678Z`, `+hh:mm` offsets,
/// or no zone meaning UTC, space instead of `T`) to unix milliseconds.
pub fn parseIso(s: []const u8) ?i64 {
    var i: usize = 0;
    const y = num(s, &i, 4) orelse return null;
    expect(s, &i, '-') orelse return null;
    const mo = num(s, &i, 2) orelse return null;
    expect(s, &i, '-') orelse return null;
    const d = num(s, &i, 2) orelse return null;
    if (i >= s.len or (s[i] != 'T' and s[i] != ' ')) return null;
    i += 1;
    const h = num(s, &i, 2) orelse return null;
    expect(s, &i, ':') orelse return null;
    const mi = num(s, &i, 2) orelse return null;
    expect(s, &i, ':') orelse return null;
    const sec = num(s, &i, 2) orelse return null;
    if (mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60) return null;
    var ms: i64 = 0;
    if (i < s.len and s[i] == '.') {
        i += 1;
        var scale: i64 = 100;
        const start = i;
        while (i < s.len and s[i] >= '0' and s[i] <= '9') : (i += 1) {
            ms += (s[i] - '0') * scale;
            scale = @divTrunc(scale, 10);
        }
        if (i == start) return null;
    }
    var offset_min: i64 = 0;
    if (i < s.len) {
        switch (s[i]) {
            'Z', 'z' => i += 1,
            '+', '-' => {
                const sign: i64 = if (s[i] == '-') -1 else 1;
                i += 1;
                const oh = num(s, &i, 2) orelse return null;
                if (i < s.len and s[i] == ':') i += 1;
                const om = num(s, &i, 2) orelse return null;
                offset_min = sign * (oh * 60 + om);
            },
            else => return null,
        }
    }
    if (i != s.len) return null;
    const days = daysFromCivil(y, @intCast(mo), @intCast(d));
    return ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms - offset_min * 60_000;
}
