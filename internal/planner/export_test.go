package planner

// HolderOf names a process as its launch claims do.
var HolderOf = holderOf
