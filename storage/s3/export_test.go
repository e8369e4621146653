package s3

// ListFallbacks counts the listings the SDK decoded (not the fast path).
var ListFallbacks = &listFallbacks
