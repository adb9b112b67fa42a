//! counter: the count is an ordinary field, so the host's transparent
//! snapshots carry it. Every event adds one and emits the count in decimal;
//! "get" only reads it; "trap" panics (a wasm trap) before touching it.

#[derive(Default)]
struct Counter {
    count: u64,
}

impl wasmesh::Daemon for Counter {
    fn process(&mut self, ev: &wasmesh::Event) -> Result<Vec<Vec<u8>>, String> {
        match ev.payload {
            b"get" => {}
            b"trap" => panic!("trap requested"),
            _ => self.count += 1,
        }
        Ok(vec![self.count.to_string().into_bytes()])
    }
}

wasmesh::export_daemon!(Counter);
