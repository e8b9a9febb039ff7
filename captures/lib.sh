# Shared by make-dns-captures.sh and make-cert-captures.sh (source it; needs
# bash with `set -euo pipefail`, root, iproute2, tcpdump, openssl).
#
# Topology: a server namespace with a bridge (192.0.2.1) and one namespace per
# client host (192.0.2.1x), each joined to the bridge by a veth pair. tcpdump
# listens on the bridge, so captures are Ethernet with real kernel
# segmentation. Addresses are documentation ranges; no packet leaves the
# namespaces, which are deleted on exit. (make-captures.sh, which made the
# first captures, keeps its own copy of these helpers: changing it means
# remaking every capture it wrote.)

SERVER=192.0.2.1
LEGACY="DEFAULT:@SECLEVEL=0"
work=$(mktemp -d)
on_exit_pids=()

# topology PREFIX INDEX:MTU...: namespaces PREFIX<pid>srv and PREFIX<pid>h<INDEX>.
topology() {
  nsp=$1$$
  shift
  srv=${nsp}srv
  trap teardown EXIT
  ip netns add "$srv"
  ip netns exec "$srv" ip link set lo up
  ip netns exec "$srv" ip link add br0 type bridge mcast_snooping 0
  ip netns exec "$srv" ip addr add "$SERVER/24" dev br0
  ip netns exec "$srv" ip link set br0 up
  local spec i mtu n
  for spec in "$@"; do
    i=${spec%%:*} mtu=${spec#*:} n="${nsp}h${spec%%:*}"
    ip netns add "$n"
    ip link add "h$i" netns "$n" type veth peer name "h$i-br" netns "$srv"
    ip netns exec "$n" ip link set lo up
    ip netns exec "$n" ip addr add "192.0.2.$((10 + i))/24" dev "h$i"
    ip netns exec "$n" ip link set "h$i" mtu "$mtu" up
    ip netns exec "$srv" ip link set "h$i-br" master br0 mtu "$mtu" up
  done
  # Keep the bridge at 1500 (it would follow its smallest port down).
  ip netns exec "$srv" ip link set br0 mtu 1500
  sleep 1
}

teardown() {
  local p n
  for p in "${on_exit_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in $(ip netns list | awk '{print $1}' | grep -E "^${nsp:-none}(srv|h)" || true); do
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$work"
}

# in_host INDEX CMD...: runs CMD (a program, not a shell function) in client
# host INDEX's namespace.
in_host() { local i=$1; shift; ip netns exec "${nsp}h$i" "$@"; }

# start_capture FILE FILTER
start_capture() {
  ip netns exec "$srv" tcpdump --immediate-mode -U -s 0 -i br0 -w "$1" "$2" 2>"$work/tcpdump.log" &
  cap_pid=$!
  # tcpdump can take a second or more to start listening: wait for it to say so.
  for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
}
stop_capture() { sleep 0.4; kill -TERM "$cap_pid" 2>/dev/null || true; wait "$cap_pid" 2>/dev/null || true; }

# server [s_server options]: OpenSSL s_server on $SERVER:$port with $CERT/$KEY
# (and $CHAIN, when set, sent after the leaf).
server() {
  local chain=()
  if [ -n "${CHAIN:-}" ]; then chain=(-cert_chain "$CHAIN"); fi
  ip netns exec "$srv" openssl s_server -quiet -accept "$SERVER:$port" -cert "$CERT" \
    -key "$KEY" "${chain[@]}" "$@" >/dev/null 2>&1 </dev/null &
  srv_pid=$!
  sleep 0.5
}
stop_server() { kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; }

# sclient INDEX [s_client options]: one OpenSSL handshake from host INDEX.
sclient() {
  local i=$1; shift
  timeout 5 ip netns exec "${nsp}h$i" openssl s_client -connect "$SERVER:$port" "$@" \
    </dev/null >/dev/null 2>&1 || true
}

# begin NAME [FILTER]: next port, capture into $work/NAME.pcap.
begin() {
  port=$((port + 1))
  name=$1
  start_capture "$work/$name.pcap" "${2:-tcp port $port}"
}
end() { stop_server; stop_capture; echo "made $name"; }

# java_client DIR: writes DIR/Client.java (a JSSE handshake that trusts any
# certificate: `java DIR/Client.java HOST PORT [PROTOCOL]`, PROTOCOL the only
# one enabled) and DIR/java-legacy.security (the JDK's own
# jdk.tls.disabledAlgorithms without TLSv1 and TLSv1.1, as an administrator
# re-enables them: `java -Djava.security.properties=DIR/java-legacy.security`).
java_client() {
  cat >"$1/Client.java" <<'JAVA'
import javax.net.ssl.*;
import java.security.cert.X509Certificate;
public class Client {
  public static void main(String[] a) throws Exception {
    TrustManager[] trustAll = { new X509TrustManager() {
      public void checkClientTrusted(X509Certificate[] c, String t) {}
      public void checkServerTrusted(X509Certificate[] c, String t) {}
      public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
    } };
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, trustAll, null);
    SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(a[0], Integer.parseInt(a[1]));
    if (a.length > 2) s.setEnabledProtocols(new String[] { a[2] });
    s.startHandshake();
    s.close();
  }
}
JAVA
  local sec
  sec=$(dirname "$(readlink -f "$(command -v java)")")/../conf/security/java.security
  awk '/^jdk.tls.disabledAlgorithms=/{f=1} f{print} f&&!/\\$/{exit}' "$sec" |
    sed 's/TLSv1\.1, //; s/TLSv1, //' >"$1/java-legacy.security"
}
