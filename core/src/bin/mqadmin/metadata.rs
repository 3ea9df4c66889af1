//! Topics, subscription groups, clusters, brokers, name servers and their configuration.

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use serde_json::Value;

use crate::common::{Admin, AdminError, AdminResult, NameServer, json_object};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Fetch all topic list from name server
    #[command(name = "topicList")]
    TopicList {
        #[command(flatten)]
        ns: NameServer,
        /// with cluster info
        #[arg(short = 'c', long = "clusterModel")]
        cluster_model: bool,
    },
}

impl Command {
    /// The Java name of the subcommand, for error lines.
    pub fn name(&self) -> &'static str {
        match self {
            Command::TopicList { .. } => "topicList",
        }
    }

    pub async fn run(self) -> AdminResult<()> {
        match self {
            Command::TopicList { ns, cluster_model } => topic_list(&Admin::new(&ns), cluster_model).await,
        }
    }
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER: one topic per line, or with `-c` Java's
/// `%-20s  %-48s  %-48s` table of cluster, consumer group and topic.
async fn topic_list(admin: &Admin, cluster_model: bool) -> AdminResult<()> {
    let response = admin.namesrv(RemotingCommand::request(request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await?;
    let body = json_object(&response.body)?;
    let mut topics: Vec<String> = body
        .get("topicList")
        .and_then(Value::as_array)
        .ok_or_else(|| AdminError::BadAnswer("no topicList in the name server's answer".to_owned()))?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    topics.sort();
    if cluster_model {
        // Filled in with the cluster table and QUERY_TOPIC_CONSUME_BY_WHO (see issue #11).
        return Err(AdminError::Other("topicList -c is not implemented yet".to_owned()));
    }
    for topic in topics {
        println!("{topic}");
    }
    Ok(())
}
