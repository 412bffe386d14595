//! What a buyer reads about their case with the humans.

use crate::desk::QueueNotice;

/// Where a queued buyer stands, and roughly how long they will wait.
pub fn queued(notice: QueueNotice) -> String {
    let place = match notice.ahead {
        0 => "您已排在第一位".to_string(),
        n => format!("前面还有 {n} 位"),
    };
    match notice.wait_seconds {
        Some(seconds) => {
            let minutes = seconds.div_ceil(60).max(1);
            format!("{place}，预计等待约 {minutes} 分钟，客服会按顺序为您服务，感谢您的耐心。")
        }
        None => format!("{place}，客服上线后会按顺序第一时间为您处理。"),
    }
}

/// An agent has taken the buyer's case.
pub fn claimed(agent_name: &str) -> String {
    format!("客服{agent_name}已为您接入，请问有什么可以帮您？")
}
