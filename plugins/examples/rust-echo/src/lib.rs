//! echo: emits every payload back unchanged (an empty payload gives one empty
//! output).

#[derive(Default)]
struct Echo;

impl wasmesh::Daemon for Echo {
    fn process(&mut self, ev: &wasmesh::Event) -> Result<Vec<Vec<u8>>, String> {
        Ok(vec![ev.payload.to_vec()])
    }
}

wasmesh::export_daemon!(Echo);
