//! Allocations of a typical SEND_MESSAGE response, counted by a global allocator: the direct
//! encoder (`ResponseFrame`) makes its one output buffer (plus the small shared header `Bytes`
//! adds to any `Vec` it takes over), where building a `RemotingCommand` allocates every key and
//! value of its ext-field map.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferromq_net::RemotingCommand;
use ferromq_net::codec::{ResponseFrame, encode_to_bytes};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every operation to the system allocator; the counter is a const-initialised
// thread-local, whose access does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce() -> bytes::Bytes) -> (usize, bytes::Bytes) {
    let before = ALLOCATIONS.with(Cell::get);
    let frame = f();
    (ALLOCATIONS.with(Cell::get) - before, frame)
}

#[test]
fn the_direct_encoder_allocates_only_its_frame() {
    let msg_id = String::from("0A0000010000A2B1000000000012D687");
    let (direct, direct_frame) = allocations(|| {
        ResponseFrame::new(0, 42, None)
            .ext("MSG_REGION", "DefaultRegion")
            .ext("TRACE_ON", true)
            .ext("msgId", &msg_id)
            .ext("queueId", 3)
            .ext("queueOffset", 1_234_567u64)
            .ext("transactionId", &msg_id)
            .finish(b"")
            .unwrap()
    });
    let (command, command_frame) = allocations(|| {
        let response = RemotingCommand::response(0, 42, None)
            .with_ext("MSG_REGION", "DefaultRegion")
            .with_ext("TRACE_ON", true)
            .with_ext("msgId", &msg_id)
            .with_ext("queueId", 3)
            .with_ext("queueOffset", 1_234_567u64)
            .with_ext("transactionId", &msg_id);
        encode_to_bytes(&response).unwrap()
    });
    assert_eq!(direct_frame, command_frame);
    println!("allocations: ResponseFrame {direct}, RemotingCommand {command}");
    // The buffer, and the refcount header `Bytes::from(Vec)` adds when capacity exceeds length.
    assert!(direct <= 2, "ResponseFrame made {direct} allocations");
    assert!(command > direct);
}
