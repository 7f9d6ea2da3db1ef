package watcher

// PendingEvery is how often hunts with hosts not done are listed.
const PendingEvery = pendingEvery
