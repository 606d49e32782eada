//! The command line: global connection flags, then noun-verb commands in the shape of Iggy's CLI.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// wharf: manage and use a Wharf (or Iggy 0.8) server from the terminal.
#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    about,
    after_help = "Exit codes: 0 success, 1 the server refused or something was not found, 2 bad usage,\n3 cannot connect, 4 authentication failed.\n\nExample: wharf --server 127.0.0.1:8090 -u iggy -p iggy stream list"
)]
pub struct Cli {
    /// Server address (default: the active context's, else 127.0.0.1:8090).
    #[arg(long, global = true, env = "WHARF_SERVER", value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Username (default: the active context's, else iggy).
    #[arg(short = 'u', long, global = true, env = "WHARF_USERNAME")]
    pub username: Option<String>,
    /// Password (default: the active context's, else iggy).
    #[arg(
        short = 'p',
        long,
        global = true,
        env = "WHARF_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Personal access token, instead of username and password.
    #[arg(long, global = true, env = "WHARF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Print only errors (and, for polls, the messages).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// TLS to the server. Any of the file or domain flags turns TLS on by itself.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Connect over TLS (default: the active context's, else plain TCP).
    #[arg(long, global = true, env = "WHARF_TLS", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue, overrides_with = "no_tls")]
    pub tls: bool,
    /// Plain TCP even if the active context says TLS.
    #[arg(long, global = true, overrides_with = "tls")]
    pub no_tls: bool,
    /// PEM file of the CA(s) that signed the server's certificate (default: the system's CAs).
    #[arg(long, global = true, env = "WHARF_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the server address's host, or
    /// localhost for an IP address).
    #[arg(long, global = true, env = "WHARF_TLS_DOMAIN", value_name = "NAME")]
    pub tls_domain: Option<String>,
    /// Your client certificate (PEM), for servers that require one (mutual TLS).
    #[arg(
        long,
        global = true,
        env = "WHARF_TLS_CERT_FILE",
        value_name = "FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(
        long,
        global = true,
        env = "WHARF_TLS_KEY_FILE",
        value_name = "FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables for people.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the server answers.
    #[command(after_help = "Example: wharf ping --count 3")]
    Ping {
        /// How many pings.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Show this connection as the server sees it.
    #[command(after_help = "Example: wharf me")]
    Me,
    /// Show server statistics.
    #[command(after_help = "Example: wharf stats --output json")]
    Stats,
    /// A live view of the server, redrawn every --interval: throughput per topic, connections
    /// per door, process CPU and memory, and the consumer groups with the largest lag.
    #[command(
        after_help = "Rates are per second between two frames, so the first frame shows totals only.\nWithout a terminal (or with --output json: one JSON object a line) frames are printed\none after another.\n\nExample: wharf top --interval 2s --limit 20"
    )]
    Top {
        /// Time between frames.
        #[arg(long, default_value = "1 s", value_name = "DURATION")]
        interval: String,
        /// Stop after this many frames (default: until interrupted).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        iterations: Option<u64>,
        /// Most topics and most lagging group partitions shown.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Streams.
    #[command(subcommand, visible_alias = "s")]
    Stream(StreamCmd),
    /// Topics.
    #[command(subcommand, visible_alias = "t")]
    Topic(TopicCmd),
    /// Partitions.
    #[command(subcommand, visible_alias = "p")]
    Partition(PartitionCmd),
    /// Send and poll messages.
    #[command(subcommand, visible_alias = "m")]
    Message(MessageCmd),
    /// Consumer groups.
    #[command(subcommand, name = "consumer-group", visible_alias = "g")]
    ConsumerGroup(GroupCmd),
    /// Stored consumer offsets.
    #[command(subcommand, name = "consumer-offset", visible_alias = "o")]
    ConsumerOffset(OffsetCmd),
    /// Users.
    #[command(subcommand, visible_alias = "u")]
    User(UserCmd),
    /// Personal access tokens.
    #[command(subcommand)]
    Pat(PatCmd),
    /// Named connection profiles.
    #[command(subcommand, visible_alias = "ctx")]
    Context(ContextCmd),
    /// Print a shell completion script.
    #[command(after_help = "Example: wharf completions bash > /etc/bash_completion.d/wharf")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum StreamCmd {
    /// Create a stream.
    #[command(after_help = "Example: wharf stream create shop")]
    Create { name: String },
    /// List streams.
    #[command(visible_alias = "ls", after_help = "Example: wharf stream list")]
    List,
    /// Show a stream and its topics.
    #[command(after_help = "Example: wharf stream get shop")]
    Get { stream: String },
    /// Rename a stream.
    #[command(after_help = "Example: wharf stream update shop store")]
    Update { stream: String, name: String },
    /// Delete a stream with its topics and messages.
    #[command(visible_alias = "rm", after_help = "Example: wharf stream delete shop")]
    Delete { stream: String },
    /// Delete every message of a stream.
    #[command(after_help = "Example: wharf stream purge shop")]
    Purge { stream: String },
}

#[derive(Debug, Args)]
pub struct TopicLimits {
    /// Delete messages older than this (e.g. `7 days`, `12 h`).
    #[arg(long, value_name = "DURATION")]
    pub message_expiry: Option<String>,
    /// Keep the topic at most this large (e.g. `10 GiB`).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// When writes are acknowledged: `os` (after write) or `fsync` (after fdatasync).
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// What happens to old messages: `delete` (retention), `compact` (keep the latest message
    /// of each `kafka.key` header) or both (Kafka's `cleanup.policy`).
    #[arg(long, value_name = "POLICY", value_parser = ["delete", "compact", "compact,delete", "delete,compact"])]
    pub cleanup_policy: Option<String>,
    /// A topic config under its Kafka name (e.g. `delete.retention.ms=60000`); repeatable.
    #[arg(long = "config", value_name = "NAME=VALUE")]
    pub configs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Os,
    Fsync,
}

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic.
    #[command(
        after_help = "Example: wharf topic create shop orders 3 --message-expiry '7 days' --durability fsync"
    )]
    Create {
        stream: String,
        name: String,
        partitions: u32,
        #[command(flatten)]
        limits: TopicLimits,
    },
    /// List the topics of a stream.
    #[command(visible_alias = "ls", after_help = "Example: wharf topic list shop")]
    List { stream: String },
    /// Show a topic and its partitions.
    #[command(after_help = "Example: wharf topic get shop orders")]
    Get { stream: String, topic: String },
    /// Rename a topic or change its limits.
    #[command(after_help = "Example: wharf topic update shop orders orders --max-size '5 GiB'")]
    Update {
        stream: String,
        topic: String,
        name: String,
        #[command(flatten)]
        limits: TopicLimits,
    },
    /// Delete a topic with its messages.
    #[command(
        visible_alias = "rm",
        after_help = "Example: wharf topic delete shop orders"
    )]
    Delete { stream: String, topic: String },
    /// Delete every message of a topic.
    #[command(after_help = "Example: wharf topic purge shop orders")]
    Purge { stream: String, topic: String },
    /// Show or change a topic's configs (Kafka's names: cleanup.policy, delete.retention.ms...).
    #[command(subcommand)]
    Config(TopicConfigCmd),
}

#[derive(Debug, Subcommand)]
pub enum TopicConfigCmd {
    /// Show a topic's configs with their values and sources.
    #[command(after_help = "Example: wharf topic config get shop orders")]
    Get { stream: String, topic: String },
    /// Set topic configs (all or none are applied); `--reset` returns one to its default.
    #[command(
        after_help = "Example: wharf topic config set shop orders cleanup.policy=compact delete.retention.ms=60000"
    )]
    Set {
        stream: String,
        topic: String,
        /// Configs to set, as NAME=VALUE.
        #[arg(value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// A config to return to its default; repeatable.
        #[arg(long, value_name = "NAME")]
        reset: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartitionCmd {
    /// Add partitions at the end of a topic.
    #[command(after_help = "Example: wharf partition create shop orders 2")]
    Create {
        stream: String,
        topic: String,
        count: u32,
    },
    /// Remove the last partitions of a topic, with their messages.
    #[command(after_help = "Example: wharf partition delete shop orders 1")]
    Delete {
        stream: String,
        topic: String,
        count: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessageCmd {
    /// Send messages: the arguments, else one per line of stdin or of --input-file.
    #[command(
        after_help = "Examples:\n  wharf message send shop orders 'first' 'second' --key user-7\n  wharf message send shop orders hello --header source:string:cli --header attempt:u64:1\n  wharf message send shop orders --input-file events.txt"
    )]
    Send {
        stream: String,
        topic: String,
        messages: Vec<String>,
        /// Send to this partition.
        #[arg(long, conflicts_with = "key")]
        partition: Option<u32>,
        /// Send by key: the partition is XxHash32(key) % partitions.
        #[arg(long)]
        key: Option<String>,
        /// A user header KEY:KIND:VALUE, KIND one of raw, string, bool, u32, u64, i64, f64.
        #[arg(long = "header", value_name = "KEY:KIND:VALUE")]
        headers: Vec<String>,
        /// Read messages from this file, one per line.
        #[arg(long, value_name = "FILE")]
        input_file: Option<PathBuf>,
    },
    /// Poll messages from a partition.
    #[command(
        after_help = "Examples:\n  wharf message poll shop orders 0 --first --count 10\n  wharf message poll shop orders 0 --next --consumer audit --auto-commit --follow"
    )]
    Poll {
        stream: String,
        topic: String,
        partition: u32,
        /// Most messages per poll.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Start at this offset.
        #[arg(long, group = "start")]
        offset: Option<u64>,
        /// Start at the first message.
        #[arg(long, group = "start")]
        first: bool,
        /// The last `count` messages.
        #[arg(long, group = "start")]
        last: bool,
        /// After the consumer's stored offset.
        #[arg(long, group = "start")]
        next: bool,
        /// Consumer name (offsets are stored under it).
        #[arg(long, default_value = "wharf-cli")]
        consumer: String,
        /// Store the offset of the last message polled.
        #[arg(long)]
        auto_commit: bool,
        /// Show user headers.
        #[arg(long)]
        show_headers: bool,
        /// Keep printing new messages until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a consumer group.
    #[command(after_help = "Example: wharf consumer-group create shop orders workers")]
    Create {
        stream: String,
        topic: String,
        name: String,
    },
    /// List the consumer groups of a topic.
    #[command(
        visible_alias = "ls",
        after_help = "Example: wharf consumer-group list shop orders"
    )]
    List { stream: String, topic: String },
    /// Show a group's members and their partitions.
    #[command(after_help = "Example: wharf consumer-group get shop orders workers")]
    Get {
        stream: String,
        topic: String,
        group: String,
    },
    /// Delete a consumer group and its stored offsets.
    #[command(
        visible_alias = "rm",
        after_help = "Example: wharf consumer-group delete shop orders workers"
    )]
    Delete {
        stream: String,
        topic: String,
        group: String,
    },
    /// How far groups are behind, per partition: Kafka and Iggy groups alike, from their
    /// committed offsets (lag = end offset - committed next offset, as Kafka reports it).
    #[command(
        after_help = "Topics are shown by their Kafka names (stream.topic outside the Kafka default stream).\n\nExamples:\n  wharf consumer-group lag\n  wharf consumer-group lag workers --output json"
    )]
    Lag {
        /// Only this group (a Kafka group id or an Iggy group name).
        group: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OffsetCmd {
    /// Show a consumer's stored offset on a partition.
    #[command(
        after_help = "Example: wharf consumer-offset get audit shop orders 0\n         wharf consumer-offset get workers shop orders 0 --group"
    )]
    Get {
        consumer: String,
        stream: String,
        topic: String,
        partition: u32,
        /// CONSUMER is a consumer group.
        #[arg(long)]
        group: bool,
    },
    /// Set a consumer's offset (the last consumed one) on a partition.
    #[command(after_help = "Example: wharf consumer-offset set audit shop orders 0 41")]
    Set {
        consumer: String,
        stream: String,
        topic: String,
        partition: u32,
        offset: u64,
        /// CONSUMER is a consumer group.
        #[arg(long)]
        group: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user.
    #[command(
        after_help = "Example: wharf user create alice 's3cret' --global read_streams,poll_messages"
    )]
    Create {
        /// The new user's name.
        #[arg(value_name = "USERNAME")]
        new_username: String,
        /// The new user's password.
        #[arg(value_name = "PASSWORD")]
        new_password: String,
        /// Create it inactive.
        #[arg(long)]
        inactive: bool,
        /// Global permissions, comma-separated (see `user permissions --help`).
        #[arg(long, value_name = "LIST")]
        global: Option<String>,
    },
    /// List users.
    #[command(visible_alias = "ls", after_help = "Example: wharf user list")]
    List,
    /// Show a user and its permissions.
    #[command(after_help = "Example: wharf user get alice")]
    Get { user: String },
    /// Delete a user.
    #[command(visible_alias = "rm", after_help = "Example: wharf user delete alice")]
    Delete { user: String },
    /// Change a password.
    #[command(after_help = "Example: wharf user password alice 's3cret' 'n3w-s3cret'")]
    Password {
        user: String,
        current: String,
        new: String,
    },
    /// Replace a user's global permissions.
    #[command(
        after_help = "Permissions: manage_servers, read_servers, manage_users, read_users, manage_streams,\nread_streams, manage_topics, read_topics, poll_messages, send_messages.\n\nExample: wharf user permissions alice read_streams,poll_messages"
    )]
    Permissions {
        user: String,
        /// Comma-separated global permissions; empty for none.
        list: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PatCmd {
    /// Create a personal access token and print it (it is shown only once).
    #[command(after_help = "Example: wharf pat create ci-deploy --expiry '30 days'")]
    Create {
        name: String,
        /// Expire after this long (default: never).
        #[arg(long, value_name = "DURATION")]
        expiry: Option<String>,
    },
    /// List your tokens.
    #[command(visible_alias = "ls", after_help = "Example: wharf pat list")]
    List,
    /// Delete a token.
    #[command(
        visible_alias = "rm",
        after_help = "Example: wharf pat delete ci-deploy"
    )]
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ContextCmd {
    /// List contexts; the active one is marked.
    #[command(visible_alias = "ls", after_help = "Example: wharf context list")]
    List,
    /// Make a context the active one.
    #[command(after_help = "Example: wharf context use staging")]
    Use { name: String },
    /// Create (or replace) a context from --server, --username, --password, --token and the
    /// --tls flags.
    #[command(
        after_help = "Example: wharf --server broker.example:8090 -u ops -p secret context create staging"
    )]
    Create { name: String },
    /// Delete a context.
    #[command(
        visible_alias = "rm",
        after_help = "Example: wharf context delete staging"
    )]
    Delete { name: String },
}
