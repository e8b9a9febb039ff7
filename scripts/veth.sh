# Sourced by the live harnesses (scripts/live-rate.sh, scripts/scrape-load.sh):
# a veth pair between two new network namespaces ${p}a (the sender) and
# ${p}b (the sensor's side, loopback up), and a work directory, all removed on
# exit. Set `p` (a short unique prefix) before sourcing.
work=$(mktemp -d)
cleanup() { ip netns del ${p}a 2>/dev/null || true; ip netns del ${p}b 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add ${p}a; ip netns add ${p}b
ip link add ${p}a netns ${p}a type veth peer name ${p}b netns ${p}b
ip -n ${p}a link set ${p}a mtu 9000 up; ip -n ${p}b link set ${p}b mtu 9000 up
ip -n ${p}b link set lo up
