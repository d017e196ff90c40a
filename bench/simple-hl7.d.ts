/** The part of simple-hl7's API the parser comparison uses (the package ships no types). */
declare module 'simple-hl7' {
  interface ParsedMessage {
    header: unknown;
    segments: unknown[];
  }
  const hl7: {
    Parser: new (options?: { segmentSeperator?: string }) => { parse(text: string): ParsedMessage };
  };
  export default hl7;
}
