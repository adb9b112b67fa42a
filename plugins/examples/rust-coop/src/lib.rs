//! coop: the counter with cooperative snapshots. Its state is the 8-byte
//! little-endian count, so the host never copies linear memory for it.

use std::convert::TryInto;

#[derive(Default)]
struct Coop {
    count: u64,
}

impl wasmesh::Daemon for Coop {
    fn process(&mut self, ev: &wasmesh::Event) -> Result<Vec<Vec<u8>>, String> {
        match ev.payload {
            b"get" => {}
            b"trap" => panic!("trap requested"),
            _ => self.count += 1,
        }
        Ok(vec![self.count.to_string().into_bytes()])
    }
}

impl wasmesh::Cooperative for Coop {
    fn snapshot(&self) -> Vec<u8> {
        self.count.to_le_bytes().to_vec()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let b: [u8; 8] = state
            .try_into()
            .map_err(|_| format!("coop: state is {} bytes, want 8", state.len()))?;
        self.count = u64::from_le_bytes(b);
        Ok(())
    }
}

wasmesh::export_cooperative_daemon!(Coop);
