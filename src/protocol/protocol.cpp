// The protocol layer's entry points: dispatch on the wire format.

#include "protocol/protocol.hpp"

#include "protocol/internal.hpp"

namespace glmproxy::detail {

Result<std::string> write_chat_request(const ChatRequest& request, std::string_view model,
                                       bool stream) {
  return request.protocol == Protocol::Anthropic ? write_anthropic_request(request, model, stream)
                                                 : write_openai_request(request, model, stream);
}

Result<ChatResponse> parse_chat_response(Protocol protocol, std::string& body) {
  return protocol == Protocol::Anthropic ? parse_anthropic_response(body)
                                         : parse_openai_response(body);
}

}  // namespace glmproxy::detail
