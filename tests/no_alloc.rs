//! The per-packet path does not allocate: reading a capture, decoding its
//! frames and tracking its connections in a table made with room for them
//! allocates nothing once started, counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use sockscope::decode::{DecodeConfig, Decoder};
use sockscope::flow::{ConnRecord, FlowConfig, FlowTable};
use sockscope::source::{CaptureReader, Input};

/// Counts allocations made on threads that turned counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: as for `alloc`; `ptr` is live with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn reading_decoding_and_tracking_allocate_nothing_per_packet() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut packets = 0u64;
    for sample in [
        "samples/http-fanin.pcap.gz",
        "samples/port-reuse.pcap.gz",
        "samples/dns-udp.pcap",
    ] {
        let bytes = std::fs::read(root.join(sample)).unwrap();
        // Set-up allocates (buffers, decoder, a table sized for the sample).
        let input = Input::from_reader(Box::new(Cursor::new(bytes))).unwrap();
        let mut reader = CaptureReader::from_input(input, 0).unwrap();
        let mut decoder = Decoder::new(DecodeConfig::default());
        let mut table = FlowTable::with_capacity(FlowConfig::default(), 4096);
        let mut records = 0u64;
        let mut sink = |r: &ConnRecord| records += r.orig_pkts + r.resp_pkts;
        let n = allocations(|| {
            while reader.advance().unwrap() {
                packets += 1;
                if let Ok(p) = decoder.decode(&reader.current().unwrap()) {
                    table.process(&p, &mut sink);
                }
            }
            table.finish(&mut sink);
        });
        assert!(records > 0, "{sample}");
        assert_eq!(n, 0, "{sample}: {n} allocations");
    }
    assert!(packets > 4000, "{packets}");
}
