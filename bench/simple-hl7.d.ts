/** The part of simple-hl7's API the parser comparison uses (the package ships no types). */
declare module 'simple-hl7' {
  interface ParsedMessage {
    header: unknown;
    segments: unknown[];
  }
  class Parser {
    constructor(options?: { segmentSeperator?: string });
    parse(text: string): ParsedMessage;
  }
  const hl7: { Parser: typeof Parser };
  export default hl7;
}
