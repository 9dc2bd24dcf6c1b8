//! Bump allocation over wasm linear memory.
//!
//! The host makes a fresh instance for every call, so nothing is ever freed:
//! the heap starts at the end of the module's initial memory and grows a page
//! at a time. Running out of memory traps, which the host reports as
//! `adapter.memory_exceeded`.

const page_size = 65536;

var heap_next: usize = 0;
var heap_end: usize = 0;

fn grow(need_end: usize) void {
    const pages = (need_end - heap_end + page_size - 1) / page_size;
    if (@wasmMemoryGrow(0, pages) < 0) @trap();
    heap_end += pages * page_size;
}

/// `len` fresh bytes, 8-byte aligned.
pub fn alloc(len: usize) []u8 {
    if (heap_end == 0) {
        heap_end = @wasmMemorySize(0) * page_size;
        heap_next = heap_end;
    }
    const start = (heap_next + 7) & ~@as(usize, 7);
    if (start + len > heap_end) grow(start + len);
    heap_next = start + len;
    const p: [*]u8 = @ptrFromInt(start);
    return p[0..len];
}

/// A typed slice of `n` items.
pub fn allocSlice(comptime T: type, n: usize) []T {
    comptime if (@alignOf(T) > 8) @compileError("bump allocator aligns to 8");
    const bytes = alloc(n * @sizeOf(T));
    const p: [*]T = @ptrCast(@alignCast(bytes.ptr));
    return p[0..n];
}

pub fn dupe(s: []const u8) []u8 {
    const out = alloc(s.len);
    @memcpy(out, s);
    return out;
}

/// Grow `old` (the items in use) to `new_cap` items; in place when `old` is
/// the most recent allocation, otherwise by copying.
pub fn regrow(comptime T: type, old: []T, used: usize, new_cap: usize) []T {
    const old_end = @intFromPtr(old.ptr) + old.len * @sizeOf(T);
    if (old.len > 0 and old_end == heap_next) {
        const new_end = @intFromPtr(old.ptr) + new_cap * @sizeOf(T);
        if (new_end > heap_end) grow(new_end);
        heap_next = new_end;
        return old.ptr[0..new_cap];
    }
    const fresh = allocSlice(T, new_cap);
    @memcpy(fresh[0..used], old[0..used]);
    return fresh;
}

/// A growable list on the bump heap.
pub fn List(comptime T: type) type {
    return struct {
        const Self = @This();
        buf: []T = &[_]T{},
        len: usize = 0,

        pub inline fn append(self: *Self, item: T) void {
            if (self.len == self.buf.len) self.growFor(1);
            self.buf[self.len] = item;
            self.len += 1;
        }

        /// Make room for `n` more items (amortised doubling).
        pub fn ensureUnused(self: *Self, n: usize) void {
            if (self.len + n > self.buf.len) self.growFor(n);
        }

        fn growFor(self: *Self, n: usize) void {
            var cap = if (self.buf.len < 16) 16 else self.buf.len * 2;
            while (cap < self.len + n) cap *= 2;
            self.buf = regrow(T, self.buf, self.len, cap);
        }

        pub inline fn appendSlice(self: *Self, xs: []const T) void {
            if (self.len + xs.len > self.buf.len) self.growFor(xs.len);
            @memcpy(self.buf[self.len .. self.len + xs.len], xs);
            self.len += xs.len;
        }

        pub fn items(self: *const Self) []T {
            return self.buf[0..self.len];
        }
    };
}

/// A growable byte string.
pub const Bytes = List(u8);
