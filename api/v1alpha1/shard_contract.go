package v1alpha1

// ReasonOtherShard (Ready=False): the object this one depends on (an M2MSession's ThingSpaceApp, a
// consumer's ClusterThingSpaceApp or ClusterM2MSession) exists but belongs to another manager's shard
// (it does not match this manager's --watch-label-selector): an object and what it depends on must be
// in the same shard. It waits for a change of either.
const ReasonOtherShard = "OtherShard"
