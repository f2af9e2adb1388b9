// Scribe's RPC interface, as the original tomograph (and Zipkin's old collector) used it:
// framed transport, binary protocol, `Log(list<LogEntry>)`. (Scribe's service extends
// fb303.FacebookService; Log is the only method a Zipkin client calls.)
enum ResultCode {
  OK = 0,
  TRY_LATER = 1
}

struct LogEntry {
  1: string category,
  2: string message
}

service scribe {
  ResultCode Log(1: list<LogEntry> messages)
}
