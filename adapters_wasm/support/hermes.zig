//! The Hermes adapter support library: everything a provider adapter needs
//! that is not provider-specific. Imported by adapters as `@import("hermes")`.

pub const mem = @import("mem.zig");
pub const json = @import("json.zig");
pub const utf8 = @import("utf8.zig");
pub const enc = @import("enc.zig");
pub const crypto = @import("crypto.zig");
pub const time = @import("time.zig");
pub const abi = @import("abi.zig");
pub const url = @import("url.zig");
pub const scan = @import("scan.zig");

pub const Value = json.Value;
pub const Writer = json.Writer;
pub const Error = abi.Error;
pub const Manifest = abi.Manifest;
pub const exportAdapter = abi.exportAdapter;
pub const fail = abi.fail;
pub const badInput = abi.badInput;
pub const concat = enc.concat;
