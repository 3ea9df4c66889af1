//! END_TRANSACTION (37): a producer's commit or rollback of a half message (PROTOCOL.md §2.4,
//! §10.2 step 4), sent one-way after its local transaction and as the answer to a check-back.
//!
//! The half record is read back by its physical offset and checked against the request
//! (producer group, queue offset, physical offset). A commit stores the final message in the
//! real queue, then an op record; a rollback stores the op record only; "unknown" does nothing
//! (a check-back asks again). The op record is what tells the check-back task
//! (`shard/transaction.rs`) that the half message is resolved.

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_store::record::decode_record;

use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::meta::topics::{PERM_WRITE, TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};
use crate::shard::ShardCtx;
use crate::transaction::{HALF_QUEUE, Resolution, committed, half_info, op_record};

/// 37 END_TRANSACTION.
pub async fn end_transaction(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let producer_group = h.str("producerGroup")?;
    let queue_offset = h.i64("tranStateTableOffset")?;
    let offset = h.i64("commitLogOffset")?;
    let code = h.i32("commitOrRollback")?;
    let resolution = Resolution::from_code(code).ok_or_else(|| BrokerError::system(format!("commitOrRollback {code} is not 0, 8 or 12")))?;
    if resolution == Resolution::Unknown {
        // The producer does not know yet: the check-back will ask again.
        return Ok(request.success_response());
    }
    let control = &ctx.control;
    if control.view().broker_permission & PERM_WRITE == 0 {
        return Err(BrokerError::no_permission(format!("the broker[{}] sending message is forbidden", control.identity().broker_name)));
    }
    let record = ctx.record_at(offset).await?.map_err(|e| BrokerError::system(format!("Find prepared transaction message failed at offset {offset}: {e}")))?;
    let half = decode_record(&record, true).map_err(|e| BrokerError::system(format!("the half message at offset {offset} is damaged: {e}")))?;
    if half.topic != TRANS_HALF_TOPIC {
        return Err(BrokerError::system(format!("the message at offset {offset} is not a half message (topic {})", half.topic)));
    }
    let info = half_info(&half).map_err(BrokerError::system)?;
    if info.producer_group != producer_group {
        return Err(BrokerError::system(format!("The producer group wrong: the half message's is {:?}, not {producer_group:?}", info.producer_group)));
    }
    if half.queue_offset != queue_offset {
        return Err(BrokerError::system(format!("The transaction state table offset wrong: {queue_offset}, the half message's is {}", half.queue_offset)));
    }
    if half.physical_offset != offset {
        return Err(BrokerError::system(format!("The commit log offset wrong: {offset}, the half message's is {}", half.physical_offset)));
    }
    if resolution == Resolution::Commit {
        let message = committed(&half, &info);
        let owner = ctx.owner(&message.topic, message.queue_id);
        ctx.on(owner, move |owner_ctx, _| async move { owner_ctx.store.append(vec![message]).await })
            .await?
            .map_err(|e| BrokerError::system(format!("the committed message was not stored: {e}")))?;
    }
    let op = op_record(half.queue_offset as u64, control.identity().store_host);
    let owner = ctx.owner(TRANS_OP_HALF_TOPIC, HALF_QUEUE);
    ctx.on(owner, move |owner_ctx, _| async move { owner_ctx.store.append(vec![op]).await })
        .await?
        .map_err(|e| BrokerError::system(format!("the transaction's op record was not stored: {e}")))?;
    Ok(request.success_response())
}
