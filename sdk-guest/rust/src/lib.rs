//! Guest SDK for wasmesh daemons (guest ABI v1).
//!
//! A daemon is a type implementing [`Daemon`]; [`export_daemon!`] turns it
//! into the exports the host expects. Build the crate that invokes the macro
//! as a `cdylib` for `wasm32-unknown-unknown`: that target imports nothing
//! from WASI and has no `_start`, which is exactly what the host wants.
//!
//! ```ignore
//! #[derive(Default)]
//! struct Echo;
//! impl wasmesh::Daemon for Echo {
//!     fn process(&mut self, ev: &wasmesh::Event) -> Result<Vec<Vec<u8>>, String> {
//!         Ok(vec![ev.payload.to_vec()])
//!     }
//! }
//! wasmesh::export_daemon!(Echo);
//! ```
//!
//! The daemon value lives in a `static`, so the host's transparent snapshots
//! (linear memory + globals) capture it without any help. Implement
//! [`Cooperative`] and use [`export_cooperative_daemon!`] instead only when the
//! state should travel as an explicit, smaller or versioned byte string.

/// One inbound event.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Hash of the sender's origin.
    pub origin: u64,
    /// The sender's sequence number for this event.
    pub seq: u64,
    /// The payload; borrowed from the input buffer, valid for this call only.
    pub payload: &'a [u8],
}

/// A wasmesh daemon. `Default` builds the initial value on the first call
/// that needs it (`wasmesh_init` at spawn, or the first event).
pub trait Daemon: Default + 'static {
    /// Called once at spawn with the spawn's config bytes (possibly empty),
    /// never after a restore. An `Err` makes `wasmesh_init` fail with that
    /// message.
    fn init(&mut self, config: &[u8]) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Handles one event. `Ok` outputs are emitted in order; an `Err` makes
    /// the event fail with that message (outputs already sent with [`emit`]
    /// during the call are the host's to discard).
    fn process(&mut self, ev: &Event) -> Result<Vec<Vec<u8>>, String>;
}

/// A daemon that serializes its own state. Only used through
/// [`export_cooperative_daemon!`].
pub trait Cooperative: Daemon {
    /// Returns the complete state; the host stores it verbatim.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces `self` (a fresh `Default` value) with a previously snapshotted
    /// state. An `Err` fails the restore.
    fn restore(&mut self, state: &[u8]) -> Result<(), String>;
}

/// Log levels understood by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

mod sys {
    #[link(wasm_import_module = "wasmesh")]
    extern "C" {
        pub fn emit(ptr: *const u8, len: usize);
        pub fn fail(ptr: *const u8, len: usize);
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn state_write(ptr: *const u8, len: usize);
        pub fn now() -> i64;
        pub fn random(ptr: *mut u8, len: usize);
        // `self` is a Rust keyword, hence the rename.
        #[link_name = "self"]
        pub fn self_id(ptr: *mut u8);
        pub fn publish(ch_ptr: *const u8, ch_len: usize, ptr: *const u8, len: usize) -> i32;
        pub fn send(target_ptr: *const u8, ptr: *const u8, len: usize) -> i32;
    }
}

/// Emits one output immediately. Returning outputs from
/// [`Daemon::process`] is usually simpler; this is for large or streamed ones.
pub fn emit(payload: &[u8]) {
    unsafe { sys::emit(payload.as_ptr(), payload.len()) }
}

/// Sets the error message of the current call.
pub fn fail(msg: &str) {
    unsafe { sys::fail(msg.as_ptr(), msg.len()) }
}

/// Writes a log line.
pub fn log(level: Level, msg: &str) {
    unsafe { sys::log(level as i32, msg.as_ptr(), msg.len()) }
}

/// Appends bytes to the state being written by a cooperative snapshot. Only
/// valid while the host is calling `wasmesh_snapshot`.
pub fn state_write(data: &[u8]) {
    unsafe { sys::state_write(data.as_ptr(), data.len()) }
}

/// Host time in unix nanoseconds. Use it instead of a clock of your own so
/// that replays see the same time.
pub fn now() -> i64 {
    unsafe { sys::now() }
}

/// Fills `buf` with host randomness.
pub fn random(buf: &mut [u8]) {
    unsafe { sys::random(buf.as_mut_ptr(), buf.len()) }
}

/// The daemon's 32-byte entity id.
pub fn self_id() -> [u8; 32] {
    let mut id = [0u8; 32];
    unsafe { sys::self_id(id.as_mut_ptr()) };
    id
}

/// Results of [`publish`] other than success, as its `Err` carries them.
pub const PUBLISH_TOO_LARGE: i32 = 1;
/// The outbox (shared with [`send`]) is full; retry in a later event.
pub const PUBLISH_FULL: i32 = 2;
/// The channel name is not 1..255 bytes of `/`-separated `[a-z0-9._-]` segments.
pub const PUBLISH_BAD_CHANNEL: i32 = 3;
/// The daemon already published to 256 distinct channels.
pub const PUBLISH_TOO_MANY_CHANNELS: i32 = 4;

/// Publishes `payload` on `channel`, exactly once and in order with this
/// daemon's other publishes there, after this event commits. The host's
/// non-zero status (one of the `PUBLISH_*` constants) comes back as `Err`.
pub fn publish(channel: &str, payload: &[u8]) -> Result<(), i32> {
    let rc = unsafe { sys::publish(channel.as_ptr(), channel.len(), payload.as_ptr(), payload.len()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(rc)
    }
}

/// Why [`send`] did not queue a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The payload is over the host's per-message cap (1 MiB).
    TooLarge,
    /// The outbox is full (4096 messages or 8 MiB); retry in a later event.
    OutboxFull,
    /// Another status from a newer host.
    Refused(i32),
}

/// Sends `payload` to the daemon whose origin (8-byte id) is `target`. It
/// arrives there as an event from this daemon's origin, exactly once and
/// in order, wherever either daemon lives; it is part of this event's
/// effects, so a failed event sends nothing.
pub fn send(target: u64, payload: &[u8]) -> Result<(), SendError> {
    let t = target.to_le_bytes();
    match unsafe { sys::send(t.as_ptr(), payload.as_ptr(), payload.len()) } {
        0 => Ok(()),
        1 => Err(SendError::TooLarge),
        2 => Err(SendError::OutboxFull),
        rc => Err(SendError::Refused(rc)),
    }
}

/// Plumbing for the export macros; not a stable API.
#[doc(hidden)]
pub mod __rt {
    use super::{Cooperative, Daemon, Event};

    // The input buffer only grows: the host may reuse it for any later input
    // no longer than the last requested length, so it must not move between
    // `wasmesh_input` calls.
    static mut INPUT: Vec<u8> = Vec::new();
    static mut HOOKED: bool = false;

    pub fn input(len: i32) -> i32 {
        let len = if len < 0 { 0 } else { len as usize };
        unsafe {
            if INPUT.len() < len {
                INPUT.resize(len, 0);
            }
            INPUT.as_mut_ptr() as i32
        }
    }

    /// # Safety
    /// `ptr..ptr+len` must be memory the host filled, i.e. inside the input
    /// buffer.
    pub unsafe fn bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
        if len <= 0 || ptr == 0 {
            // from_raw_parts needs a non-null pointer even for empty slices.
            return &[];
        }
        core::slice::from_raw_parts(ptr as usize as *const u8, len as usize)
    }

    // A panic traps the instance (panic=abort on wasm32-unknown-unknown);
    // handing the message to `fail` first lets the host say why.
    fn hook() {
        unsafe {
            if HOOKED {
                return;
            }
            HOOKED = true;
        }
        std::panic::set_hook(Box::new(|info| {
            let msg = info.to_string();
            super::fail(&msg);
        }));
    }

    fn failed(msg: &str) -> i32 {
        super::fail(msg);
        1
    }

    pub fn init<D: Daemon>(d: &mut D, ptr: i32, len: i32) -> i32 {
        hook();
        match d.init(unsafe { bytes(ptr, len) }) {
            Ok(()) => 0,
            Err(e) => failed(&e),
        }
    }

    pub fn process<D: Daemon>(d: &mut D, origin: i64, seq: i64, ptr: i32, len: i32) -> i32 {
        hook();
        let ev = Event {
            origin: origin as u64,
            seq: seq as u64,
            payload: unsafe { bytes(ptr, len) },
        };
        match d.process(&ev) {
            Ok(outs) => {
                for o in &outs {
                    super::emit(o);
                }
                0
            }
            Err(e) => failed(&e),
        }
    }

    pub fn snapshot<D: Cooperative>(d: &mut D) -> i32 {
        hook();
        let state = d.snapshot();
        super::state_write(&state);
        0
    }

    pub fn restore<D: Cooperative>(d: &mut D, ptr: i32, len: i32) -> i32 {
        hook();
        match d.restore(unsafe { bytes(ptr, len) }) {
            Ok(()) => 0,
            Err(e) => failed(&e),
        }
    }
}

/// Generates the ABI v1 exports for a [`Daemon`] type: `wasmesh_abi_v1`,
/// `wasmesh_input`, `wasmesh_init` and `wasmesh_process`. Invoke it once, at
/// the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_daemon {
    ($t:ty) => {
        static mut __WASMESH_DAEMON: ::core::option::Option<$t> = ::core::option::Option::None;

        fn __wasmesh_daemon() -> &'static mut $t {
            // Single-threaded guest: the host never re-enters an export.
            unsafe { __WASMESH_DAEMON.get_or_insert_with(<$t as ::core::default::Default>::default) }
        }

        #[no_mangle]
        pub extern "C" fn wasmesh_abi_v1() {}

        #[no_mangle]
        pub extern "C" fn wasmesh_input(len: i32) -> i32 {
            $crate::__rt::input(len)
        }

        #[no_mangle]
        pub extern "C" fn wasmesh_init(ptr: i32, len: i32) -> i32 {
            $crate::__rt::init(__wasmesh_daemon(), ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn wasmesh_process(origin: i64, seq: i64, ptr: i32, len: i32) -> i32 {
            $crate::__rt::process(__wasmesh_daemon(), origin, seq, ptr, len)
        }
    };
}

/// Like [`export_daemon!`], and also exports `wasmesh_snapshot` and
/// `wasmesh_restore`, which makes the host use the type's [`Cooperative`]
/// implementation instead of transparent memory snapshots.
#[macro_export]
macro_rules! export_cooperative_daemon {
    ($t:ty) => {
        $crate::export_daemon!($t);

        #[no_mangle]
        pub extern "C" fn wasmesh_snapshot() -> i32 {
            $crate::__rt::snapshot(__wasmesh_daemon())
        }

        #[no_mangle]
        pub extern "C" fn wasmesh_restore(ptr: i32, len: i32) -> i32 {
            $crate::__rt::restore(__wasmesh_daemon(), ptr, len)
        }
    };
}
