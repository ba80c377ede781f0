package bus

// QuorumCurrent exposes quorumCurrent to the external tests.
var QuorumCurrent = quorumCurrent
