package label

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// NamespaceLabel is the XML namespace of STANAG 4774 labels.
const NamespaceLabel = "urn:nato:stanag:4774:confidentialitymetadatalabel:1:0"

// xmlRoot is the root element name emitted; any local name is accepted.
const xmlRoot = "originatorConfidentialityLabel"

// ParseXML parses a STANAG 4774 label in XML and validates its structure.
//
// The root element may have any local name (originatorConfidentialityLabel,
// OriginatorConfidentialityLabel, ConfidentialityLabel, ...) but must be in
// [NamespaceLabel]. Elements of other namespaces, and elements of the label's
// namespace that this package does not model, are skipped at the root level;
// inside ConfidentialityInformation and Category anything unknown is an
// error, since a value this parser did not understand could be a restriction.
// Document type declarations are refused. Input over [MaxXMLSize] is refused
// unread. It does not resolve the policy: use [Registry.ParseXML] for that.
func ParseXML(data []byte) (Label, error) {
	l, err := parseXML(data)
	if err != nil {
		return Label{}, fmt.Errorf("parse label xml: %w", err)
	}
	return l, nil
}

func parseXML(data []byte) (Label, error) {
	if len(data) > MaxXMLSize {
		return Label{}, fmt.Errorf("%d bytes, over the limit of %d", len(data), MaxXMLSize)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	root, err := rootElement(d)
	if err != nil {
		return Label{}, err
	}
	if root.Name.Space != NamespaceLabel {
		return Label{}, fmt.Errorf("root element %s: namespace %q, want %q", root.Name.Local, root.Name.Space, NamespaceLabel)
	}
	l, err := parseRoot(d, root)
	if err != nil {
		return Label{}, err
	}
	if err := trailer(d); err != nil {
		return Label{}, err
	}
	if err := l.Validate(); err != nil {
		return Label{}, err
	}
	return l, nil
}

// rootElement reads up to the root element, refusing a DTD.
func rootElement(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return xml.StartElement{}, errors.New("no root element")
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.Directive:
			return xml.StartElement{}, errors.New("document type declarations are not allowed")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, errors.New("text before the root element")
			}
		}
	}
}

// trailer checks that nothing but space, comments and processing
// instructions follows the root element.
func trailer(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("text after the root element")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return errors.New("content after the root element")
		}
	}
}

func parseRoot(d *xml.Decoder, root xml.StartElement) (Label, error) {
	var l Label
	for _, a := range root.Attr {
		if a.Name.Space == "" && a.Name.Local == "ReviewDateTime" {
			t, err := parseTime(strings.TrimSpace(a.Value))
			if err != nil {
				return Label{}, fmt.Errorf("ReviewDateTime: %w", err)
			}
			l.ReviewAt = t
		}
	}
	var haveInfo, haveCreated bool
	for {
		tok, err := d.Token()
		if err != nil {
			return Label{}, unexpectedEOF(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if !haveInfo {
				return Label{}, errors.New("missing ConfidentialityInformation")
			}
			return l, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return Label{}, fmt.Errorf("unexpected text in %s", root.Name.Local)
			}
		case xml.StartElement:
			switch {
			case t.Name.Space != NamespaceLabel:
				if err := d.Skip(); err != nil {
					return Label{}, unexpectedEOF(err)
				}
			case t.Name.Local == "ConfidentialityInformation":
				if haveInfo {
					return Label{}, errors.New("ConfidentialityInformation given twice")
				}
				haveInfo = true
				if err := parseInfo(d, &l); err != nil {
					return Label{}, fmt.Errorf("ConfidentialityInformation: %w", err)
				}
			case t.Name.Local == "CreationDateTime":
				if haveCreated {
					return Label{}, errors.New("CreationDateTime given twice")
				}
				haveCreated = true
				s, err := elementText(d, t)
				if err != nil {
					return Label{}, err
				}
				if l.Created, err = parseTime(s); err != nil {
					return Label{}, fmt.Errorf("CreationDateTime: %w", err)
				}
			default:
				if err := d.Skip(); err != nil {
					return Label{}, unexpectedEOF(err)
				}
			}
		}
	}
}

func parseInfo(d *xml.Decoder, l *Label) error {
	var havePolicy, haveClass, havePrivacy bool
	values := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return unexpectedEOF(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if !havePolicy {
				return errors.New("missing PolicyIdentifier")
			}
			if !haveClass {
				return errors.New("missing Classification")
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("unexpected text")
			}
		case xml.StartElement:
			if t.Name.Space != NamespaceLabel {
				return fmt.Errorf("unexpected element %s in namespace %q", t.Name.Local, t.Name.Space)
			}
			once := func(seen *bool) error {
				if *seen {
					return fmt.Errorf("%s given twice", t.Name.Local)
				}
				*seen = true
				return nil
			}
			switch t.Name.Local {
			case "PolicyIdentifier":
				if err := once(&havePolicy); err != nil {
					return err
				}
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "URI" {
						l.PolicyURI = strings.TrimSpace(a.Value)
					}
				}
				if l.Policy, err = elementText(d, t); err != nil {
					return err
				}
				if l.Policy == "" {
					return errors.New("PolicyIdentifier: empty")
				}
			case "Classification":
				if err := once(&haveClass); err != nil {
					return err
				}
				if l.Classification, err = elementText(d, t); err != nil {
					return err
				}
				if l.Classification == "" {
					return errors.New("element Classification: empty")
				}
			case "PrivacyMark":
				if err := once(&havePrivacy); err != nil {
					return err
				}
				if l.PrivacyMark, err = elementText(d, t); err != nil {
					return err
				}
			case "Category":
				if len(l.Categories) == MaxCategories {
					return fmt.Errorf("more than %d categories", MaxCategories)
				}
				c, err := parseCategory(d, t, &values)
				if err != nil {
					return fmt.Errorf("category %d: %w", len(l.Categories)+1, err)
				}
				l.Categories = append(l.Categories, c)
			default:
				return fmt.Errorf("unexpected element %s", t.Name.Local)
			}
		}
	}
}

func parseCategory(d *xml.Decoder, start xml.StartElement, values *int) (Category, error) {
	var c Category
	var typ string
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "TagName":
			c.TagName = strings.TrimSpace(a.Value)
		case "Type":
			typ = strings.TrimSpace(a.Value)
		}
	}
	if c.TagName == "" {
		return Category{}, errors.New("missing TagName")
	}
	if typ == "" {
		return Category{}, fmt.Errorf("%q: missing Type", c.TagName)
	}
	var err error
	if c.Type, err = ParseCategoryType(typ); err != nil {
		return Category{}, fmt.Errorf("%q: %w", c.TagName, err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return Category{}, unexpectedEOF(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if len(c.Values) == 0 {
				return Category{}, fmt.Errorf("%q: no GenericValue", c.TagName)
			}
			return c, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return Category{}, fmt.Errorf("%q: unexpected text", c.TagName)
			}
		case xml.StartElement:
			if t.Name.Space != NamespaceLabel || t.Name.Local != "GenericValue" {
				return Category{}, fmt.Errorf("%q: unexpected element %s (only GenericValue is understood)", c.TagName, t.Name.Local)
			}
			if *values++; *values > MaxValues {
				return Category{}, fmt.Errorf("more than %d values in all categories", MaxValues)
			}
			v, err := elementText(d, t)
			if err != nil {
				return Category{}, fmt.Errorf("%q: %w", c.TagName, err)
			}
			c.Values = append(c.Values, v)
		}
	}
}

// elementText returns the trimmed text content of an element that has no
// child elements.
func elementText(d *xml.Decoder, start xml.StartElement) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", unexpectedEOF(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.StartElement:
			return "", fmt.Errorf("%s: unexpected element %s", start.Name.Local, t.Name.Local)
		case xml.EndElement:
			return strings.TrimSpace(b.String()), nil
		}
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// XML returns the label as a STANAG 4774 XML document with the root element
// slab:originatorConfidentialityLabel. The label must be valid.
func (l Label) XML() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("encode label xml: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	l.writeXML(&b, "")
	return b.Bytes(), nil
}

// writeXML writes the label element, each line prefixed by indent.
func (l Label) writeXML(b *bytes.Buffer, indent string) {
	in := func(depth int) {
		b.WriteString(indent)
		for range depth {
			b.WriteString("  ")
		}
	}
	in(0)
	b.WriteString(`<slab:` + xmlRoot + ` xmlns:slab="` + NamespaceLabel + `"`)
	if !l.ReviewAt.IsZero() {
		b.WriteString(` ReviewDateTime="` + formatTime(l.ReviewAt) + `"`)
	}
	b.WriteString(">\n")
	in(1)
	b.WriteString("<slab:ConfidentialityInformation>\n")
	in(2)
	b.WriteString("<slab:PolicyIdentifier")
	if l.PolicyURI != "" {
		b.WriteString(` URI="`)
		escape(b, l.PolicyURI)
		b.WriteString(`"`)
	}
	b.WriteString(">")
	escape(b, l.Policy)
	b.WriteString("</slab:PolicyIdentifier>\n")
	in(2)
	b.WriteString("<slab:Classification>")
	escape(b, l.Classification)
	b.WriteString("</slab:Classification>\n")
	if l.PrivacyMark != "" {
		in(2)
		b.WriteString("<slab:PrivacyMark>")
		escape(b, l.PrivacyMark)
		b.WriteString("</slab:PrivacyMark>\n")
	}
	for _, c := range l.Categories {
		in(2)
		b.WriteString(`<slab:Category TagName="`)
		escape(b, c.TagName)
		b.WriteString(`" Type="` + c.Type.String() + "\">\n")
		for _, v := range c.Values {
			in(3)
			b.WriteString("<slab:GenericValue>")
			escape(b, v)
			b.WriteString("</slab:GenericValue>\n")
		}
		in(2)
		b.WriteString("</slab:Category>\n")
	}
	in(1)
	b.WriteString("</slab:ConfidentialityInformation>\n")
	if !l.Created.IsZero() {
		in(1)
		b.WriteString("<slab:CreationDateTime>" + formatTime(l.Created) + "</slab:CreationDateTime>\n")
	}
	in(0)
	b.WriteString("</slab:" + xmlRoot + ">\n")
}

func escape(b *bytes.Buffer, s string) {
	// EscapeText only fails when the writer does; a Buffer does not.
	_ = xml.EscapeText(b, []byte(s))
}
